"""Peer for benches/guard.rs: pyahocorasick over the same 10,000 phrases and messages.

pyahocorasick has no normalisation (no width/case folding, no traditional->simplified,
no dropping of inserted symbols, no variants): it matches the messages as written, so it
does less work per message than the guard. Usage: peer_guard.py PHRASES MESSAGES
"""
import sys
import time

import ahocorasick


def main():
    phrases = open(sys.argv[1], encoding="utf-8").read().split("\n")
    messages = open(sys.argv[2], encoding="utf-8").read().split("\n")
    automaton = ahocorasick.Automaton()
    for i, p in enumerate(phrases):
        automaton.add_word(p, i)
    automaton.make_automaton()
    total_bytes = sum(len(m.encode("utf-8")) for m in messages)

    def run():
        found = 0
        for m in messages:
            for _ in automaton.iter(m):
                found += 1
        return found

    found = run()
    best = float("inf")
    # CPU time of this thread, like the Rust side, so other processes on the machine
    # do not count.
    for _ in range(5):
        start, cpu0 = time.perf_counter(), time.thread_time()
        passes = 0
        while time.perf_counter() - start < 0.5:
            run()
            passes += 1
        best = min(best, (time.thread_time() - cpu0) / passes)
    n = len(messages)
    print(
        f"{'pyahocorasick, 10,000 phrases, as written':<44} "
        f"{total_bytes / best / 1e6:>8.1f} MB/s {n / best:>10.0f} msg/s {best * 1e9 / n:>8.0f} ns/msg  findings {found}"
    )
    # For reference: the same automaton over all messages as one text, without the
    # per-message call overhead (not comparable with a per-message guard).
    whole = "\n".join(messages)
    start = time.thread_time()
    passes = 0
    while time.thread_time() - start < 1.0:
        sum(1 for _ in automaton.iter(whole))
        passes += 1
    one = (time.thread_time() - start) / passes
    print(f"{'  pyahocorasick, all messages as one text':<44} {total_bytes / one / 1e6:>8.1f} MB/s")
    print(f"peer_ns_per_msg {best * 1e9 / n:.1f}")


if __name__ == "__main__":
    main()
