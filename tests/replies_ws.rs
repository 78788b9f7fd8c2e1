//! The robot over a real websocket on loopback: a stand-in platform on 127.0.0.1:0 sends
//! `event` frames; a minimal gateway loop (the routing the live gateway is to do: `replies.*`
//! ops to `handle_op`, events to the robot, actions back as frames) answers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use kefu::replies::ops;
use kefu::replies::robot::Robot;
use kefu::time::{format_rfc3339_shanghai, now_ms};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

/// The gateway's part, reduced to routing: frames in, robot, frames out; rescues on time.
async fn gateway(url: String) {
    let Ok((mut ws, _)) = tokio_tungstenite::connect_async(url).await else { return };
    let mut robot =
        Robot::new(Arc::new(kefu::replies::load(None, None).expect("embedded replies are valid")));
    // The engine decides sessions and waits; the robot takes its outputs.
    let mut engine = kefu::engine::Engine::new(
        kefu::rules::response_time::ResponseRules::default(),
        kefu::alerts::Plan::default(),
    );
    let mut next_id = 1;
    loop {
        let wait = robot.next_due().map(|d| Duration::from_millis((d - now_ms()).max(0) as u64));
        let timer = async move {
            match wait {
                Some(w) => tokio::time::sleep(w).await,
                None => std::future::pending().await,
            }
        };
        let out: Vec<Value> = tokio::select! {
            frame = ws.next() => {
                let Some(Ok(Message::Text(text))) = frame else { return };
                let Ok(v) = serde_json::from_str::<Value>(&text) else { continue };
                if let Some(reply) = ops::handle_op(robot.replies(), &v) {
                    vec![reply]
                } else if let (Some("event"), Ok(ev)) = (v["op"].as_str(), kefu::event::from_value(&v["event"])) {
                    let mut outputs = Vec::new();
                    engine.handle(&ev, &mut outputs, &mut Vec::new());
                    ops::frames(&robot.handle(&ev, &outputs, now_ms()), &mut next_id)
                } else {
                    Vec::new()
                }
            }
            () = timer => ops::frames(&robot.advance(now_ms()), &mut next_id),
        };
        for f in out {
            if ws.send(Message::Text(f.to_string())).await.is_err() {
                return;
            }
        }
    }
}

#[tokio::test]
async fn away_agents_buyer_gets_the_shipping_answer_within_a_second() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    let client = tokio::spawn(gateway(url));
    let (tcp, _) = listener.accept().await.unwrap();
    let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();

    let ts = format_rfc3339_shanghai(now_ms());
    let presence =
        json!({"type":"presence","id":"p1","ts":ts,"shop":"毛菇小象","agent":"小美","status":"away"});
    let ask = json!({"type":"message","id":"m1","ts":ts,"shop":"毛菇小象","conversation":"c1",
        "customer":"tb_buyer_1","agent":"小美","from":"customer","text":"发什么快递"});
    // Events arrive as the platform sends them (docs/protocol.md, "Wire protocol").
    let frame =
        |seq: u64, event: Value| Message::Text(json!({"op":"event","seq":seq,"event":event}).to_string());
    ws.send(frame(1, presence)).await.unwrap();
    let asked = Instant::now();
    ws.send(frame(2, ask)).await.unwrap();

    let mut sends = Vec::new();
    let answer = loop {
        let frame =
            tokio::time::timeout(Duration::from_secs(1), ws.next()).await.expect("an answer within 1 s");
        let Some(Ok(Message::Text(text))) = frame else { panic!("connection ended: {frame:?}") };
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!((v["op"].as_str(), v["as"].as_str()), (Some("send"), Some("bot")), "{v}");
        assert_eq!(v["conversation"], "c1");
        sends.push(v.clone());
        if v["text"].as_str().is_some_and(|t| t.contains("中通")) {
            break v;
        }
    };
    assert!(asked.elapsed() < Duration::from_secs(1), "answered after {:?}", asked.elapsed());
    assert_eq!(sends.len(), 2, "greeting, then the 发货查件 answer: {sends:?}");
    assert!(answer["id"].as_str().is_some_and(|id| id.starts_with("bot-")));

    ws.send(Message::Text(json!({"op":"replies.find","id":"q1","agent":"小美","query":"mfh"}).to_string()))
        .await
        .unwrap();
    let frame = tokio::time::timeout(Duration::from_secs(1), ws.next()).await.expect("a lookup answer");
    let Some(Ok(Message::Text(text))) = frame else { panic!("connection ended") };
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!((v["op"].as_str(), v["id"].as_str()), (Some("replies.found"), Some("q1")), "{v}");
    assert_eq!(v["results"][0]["code"], "mfh");
    assert_eq!(v["results"][0]["rank"], "code_prefix");

    ws.close(None).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), client).await.unwrap().unwrap();
}
