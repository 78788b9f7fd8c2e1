//! `kefu replies …`: import, export, find and misses.
