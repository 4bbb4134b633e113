//! The server over real HTTP on loopback: answers, streaming, logprobs, stop strings,
//! every error's status and shape, the queue, and requests side by side.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use common::client::request;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use powerinfer_core::corpus::quick_sample;
use powerinfer_core::{Engine, EngineOptions, FfnPolicy, PolicySpec};
use powerinfer_server::{ServerConfig, router, serve};
use serde_json::{Value, json};

fn engine() -> Arc<Engine> {
    static ENGINE: OnceLock<Arc<Engine>> = OnceLock::new();
    Arc::clone(ENGINE.get_or_init(|| {
        powerinfer_assets::ensure_assets().unwrap();
        let opts = EngineOptions {
            ctx_len: 256,
            threads: Some(2),
            ..EngineOptions::default()
        };
        Arc::new(Engine::load(powerinfer_assets::default_model_path(), &opts).unwrap())
    }))
}

/// Starts a server with `edit` applied to its config; returns its address.
fn start(edit: impl FnOnce(&mut ServerConfig)) -> SocketAddr {
    let mut config = ServerConfig::new("smollm2");
    let botchan = std::fs::read_to_string(powerinfer_assets::data_path("botchan.txt")).unwrap();
    config.calibration = quick_sample(engine().tokenizer(), &botchan).unwrap();
    edit(&mut config);
    let app = router(engine(), config);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async move {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(l.local_addr().unwrap()).unwrap();
            serve(l, app).await.unwrap();
        });
    });
    rx.recv().unwrap()
}

fn post(addr: SocketAddr, path: &str, body: &Value) -> (u16, Value) {
    let (status, _, text) = request(addr, "POST", path, &[], body.to_string().as_bytes());
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn chat(question: &str, extra: Value) -> Value {
    let mut body = json!({"messages": [{"role": "user", "content": question}], "temperature": 0, "max_tokens": 24});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

fn content(v: &Value) -> String {
    v["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn chat_answers_and_streaming_adds_up_to_the_same_text() {
    let addr = start(|_| {});
    let (status, v) = post(
        addr,
        "/v1/chat/completions",
        &chat("What is the capital of France?", json!({})),
    );
    assert_eq!(status, 200, "{v}");
    let text = content(&v);
    assert!(text.contains("Paris"), "{text}");
    assert!(v["usage"]["completion_tokens"].as_u64().unwrap() > 0);
    assert!(v["powerinfer"]["ffn_density"].as_f64().unwrap() > 0.99);
    let (status, _, sse) = request(
        addr,
        "POST",
        "/v1/chat/completions",
        &[],
        chat("What is the capital of France?", json!({"stream": true}))
            .to_string()
            .as_bytes(),
    );
    assert_eq!(status, 200);
    let events: Vec<&str> = sse
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .collect();
    assert_eq!(events.last(), Some(&"[DONE]"));
    let mut streamed = String::new();
    let mut finish = Value::Null;
    for e in &events[..events.len() - 1] {
        let c: Value = serde_json::from_str(e).unwrap();
        assert_eq!(c["object"], "chat.completion.chunk");
        streamed.push_str(c["choices"][0]["delta"]["content"].as_str().unwrap_or(""));
        if !c["choices"][0]["finish_reason"].is_null() {
            finish = c["choices"][0]["finish_reason"].clone();
        }
    }
    assert_eq!(streamed, text);
    assert_eq!(finish, v["choices"][0]["finish_reason"]);
    // A sparse policy per request reports the density it reached.
    let (status, v) = post(
        addr,
        "/v1/chat/completions",
        &chat(
            "What is the capital of France?",
            json!({"powerinfer": {"policy": "threshold:0.5"}}),
        ),
    );
    assert_eq!(status, 200, "{v}");
    let d = v["powerinfer"]["ffn_density"].as_f64().unwrap();
    assert!((0.3..0.7).contains(&d), "density {d}");
}

#[test]
fn completions_echo_logprobs_match_scoring_the_prompt() {
    let addr = start(|_| {});
    let prompt = "The capital of France is";
    let (status, v) = post(
        addr,
        "/v1/completions",
        &json!({"prompt": prompt, "max_tokens": 3, "temperature": 0, "echo": true, "logprobs": 2}),
    );
    assert_eq!(status, 200, "{v}");
    let choice = &v["choices"][0];
    assert!(choice["text"].as_str().unwrap().starts_with(prompt));
    let lp = &choice["logprobs"];
    let ids = engine().tokenizer().encode(prompt, false).unwrap();
    let scored = engine()
        .prompt_logprobs(&ids, &FfnPolicy::Dense, 2)
        .unwrap();
    let token_lps = lp["token_logprobs"].as_array().unwrap();
    assert_eq!(token_lps.len(), ids.len() + 3);
    assert!(token_lps[0].is_null());
    for (k, s) in scored.iter().enumerate() {
        let got = token_lps[k + 1].as_f64().unwrap() as f32;
        assert!(
            (got - s.logprob).abs() < 1e-5,
            "{k}: {got} vs {}",
            s.logprob
        );
    }
    assert_eq!(lp["top_logprobs"][1].as_object().unwrap().len(), 2);
    // The request's policy scores the prompt too.
    let (status, v) = post(
        addr,
        "/v1/completions",
        &json!({"prompt": prompt, "max_tokens": 1, "temperature": 0, "echo": true, "logprobs": 0,
                "powerinfer": {"policy": "threshold:0.5"}}),
    );
    assert_eq!(status, 200, "{v}");
    let botchan = std::fs::read_to_string(powerinfer_assets::data_path("botchan.txt")).unwrap();
    let calibration = quick_sample(engine().tokenizer(), &botchan).unwrap();
    let sparse = PolicySpec::Threshold(0.5)
        .resolve(engine().model(), engine().kernels(), &calibration, None)
        .unwrap();
    let scored = engine().prompt_logprobs(&ids, &sparse, 0).unwrap();
    let token_lps = v["choices"][0]["logprobs"]["token_logprobs"]
        .as_array()
        .unwrap();
    for (k, s) in scored.iter().enumerate() {
        let got = token_lps[k + 1].as_f64().unwrap() as f32;
        assert!(
            (got - s.logprob).abs() < 1e-5,
            "{k}: {got} vs {}",
            s.logprob
        );
    }
}

#[test]
fn stop_strings_end_the_text_before_them() {
    let addr = start(|_| {});
    let (_, full) = post(
        addr,
        "/v1/chat/completions",
        &chat("What is the capital of France?", json!({})),
    );
    let full = content(&full);
    let at = full.find("Paris").unwrap();
    for stop in [json!("Paris"), json!(["nothing like it", "Paris"])] {
        let (status, v) = post(
            addr,
            "/v1/chat/completions",
            &chat("What is the capital of France?", json!({"stop": stop})),
        );
        assert_eq!(status, 200, "{v}");
        assert_eq!(content(&v), full[..at]);
        assert_eq!(v["choices"][0]["finish_reason"], "stop");
    }
}

#[test]
fn every_error_has_its_status_and_shape_and_the_server_keeps_serving() {
    let addr = start(|c| {
        c.api_key = Some("sekrit".into());
        c.body_limit = 4096;
    });
    let key = ["Authorization: Bearer sekrit"];
    let send =
        |path: &str, body: &[u8], headers: &[&str]| request(addr, "POST", path, headers, body);
    let cases: Vec<(u16, &str, Vec<u8>, &[&str])> = vec![
        (
            401,
            "/v1/chat/completions",
            chat("hi", json!({})).to_string().into_bytes(),
            &[],
        ),
        (
            401,
            "/v1/chat/completions",
            chat("hi", json!({})).to_string().into_bytes(),
            &["Authorization: Bearer wrong"],
        ),
        (400, "/v1/chat/completions", b"{not json".to_vec(), &key),
        (
            400,
            "/v1/chat/completions",
            br#"{"messages": 5}"#.to_vec(),
            &key,
        ),
        (
            400,
            "/v1/chat/completions",
            chat("hi", json!({"temperature": "hot"}))
                .to_string()
                .into_bytes(),
            &key,
        ),
        (
            400,
            "/v1/chat/completions",
            chat("hi", json!({"n": 2})).to_string().into_bytes(),
            &key,
        ),
        (
            400,
            "/v1/chat/completions",
            br#"{"messages": [{"role": "wizard", "content": "hi"}]}"#.to_vec(),
            &key,
        ),
        (
            400,
            "/v1/chat/completions",
            chat(
                "hi",
                json!({"powerinfer": {"policy": "predictor:/etc/passwd"}}),
            )
            .to_string()
            .into_bytes(),
            &key,
        ),
        (
            400,
            "/v1/chat/completions",
            chat("hi", json!({"powerinfer": {"policy": "nonsense"}}))
                .to_string()
                .into_bytes(),
            &key,
        ),
        (
            404,
            "/v1/chat/completions",
            chat("hi", json!({"model": "gpt-7"}))
                .to_string()
                .into_bytes(),
            &key,
        ),
        (404, "/v1/nothing", b"{}".to_vec(), &key),
        (413, "/v1/chat/completions", vec![b' '; 10_000], &key),
        (
            400,
            "/v1/chat/completions",
            chat(&"word ".repeat(600), json!({}))
                .to_string()
                .into_bytes(),
            &key,
        ),
        (
            400,
            "/v1/chat/completions",
            chat("hi", json!({"max_tokens": 100_000}))
                .to_string()
                .into_bytes(),
            &key,
        ),
    ];
    for (want, path, body, headers) in cases {
        let (status, head, text) = send(path, &body, headers);
        assert_eq!(status, want, "{path}: {text}");
        assert!(
            head.to_ascii_lowercase().contains("application/json"),
            "{head}"
        );
        let v: Value = serde_json::from_str(&text).unwrap();
        let err = &v["error"];
        assert!(
            err["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{v}"
        );
        assert!(
            err["type"].is_string() && err["code"].is_string() && err.get("param").is_some(),
            "{v}"
        );
    }
    // Numbers named: the long prompt and the max_tokens past the context.
    let (_, _, text) = send(
        "/v1/chat/completions",
        chat("hi", json!({"max_tokens": 100_000}))
            .to_string()
            .as_bytes(),
        &key,
    );
    assert!(text.contains("100000") && text.contains("256"), "{text}");
    let (status, _, text) = send(
        "/v1/chat/completions",
        chat("What is the capital of France?", json!({}))
            .to_string()
            .as_bytes(),
        &key,
    );
    assert_eq!(status, 200, "{text}");
    let (status, _, _) = request(addr, "GET", "/health", &[], b"");
    assert_eq!(status, 200);
}

#[test]
fn parallel_requests_match_the_same_request_alone_and_the_queue_is_bounded() {
    let addr = start(|c| {
        c.parallel = 4;
        c.queue = 8;
    });
    let questions = [
        "What is the capital of France?",
        "Name a primary colour.",
        "What is 2+2?",
        "Say hello.",
    ];
    let alone: Vec<String> = questions
        .iter()
        .map(|q| content(&post(addr, "/v1/chat/completions", &chat(q, json!({}))).1))
        .collect();
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let q = questions[i % 4];
            std::thread::spawn(move || {
                content(&post(addr, "/v1/chat/completions", &chat(q, json!({}))).1)
            })
        })
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        assert_eq!(h.join().unwrap(), alone[i % 4], "request {i}");
    }
    // One slot, a queue of one: of six at once, some are turned away with 429 and
    // Retry-After; every request gets an answer (none hangs).
    let addr = start(|c| {
        c.parallel = 1;
        c.queue = 1;
    });
    let handles: Vec<_> = (0..6)
        .map(|_| {
            std::thread::spawn(move || {
                let body = chat("Say hello.", json!({"max_tokens": 8})).to_string();
                let (status, head, _) =
                    request(addr, "POST", "/v1/chat/completions", &[], body.as_bytes());
                (status, head.to_ascii_lowercase().contains("retry-after"))
            })
        })
        .collect();
    let results: Vec<(u16, bool)> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(results.iter().any(|r| r.0 == 200), "{results:?}");
    assert!(results.iter().any(|r| r.0 == 429 && r.1), "{results:?}");
    assert!(
        results.iter().all(|r| r.0 == 200 || r.0 == 429),
        "{results:?}"
    );
}

/// `/health` says 503 while the only slot is taken and no queue is allowed; a client
/// that disconnects mid-stream cancels its generation, which frees the slot long before
/// the answer would have finished.
#[test]
fn health_tracks_the_slots_and_a_disconnect_cancels_the_generation() {
    let addr = start(|c| {
        c.parallel = 1;
        c.queue = 0;
    });
    let long = chat(
        "Tell me a long story about a dragon.",
        json!({"max_tokens": 200, "stream": true}),
    );
    // How long the whole answer takes, streamed to the end.
    let t0 = std::time::Instant::now();
    let (status, _, _) = request(
        addr,
        "POST",
        "/v1/chat/completions",
        &[],
        long.to_string().as_bytes(),
    );
    assert_eq!(status, 200);
    let full = t0.elapsed();
    // The same request, dropped after its first bytes.
    let mut s = TcpStream::connect(addr).unwrap();
    let body = long.to_string();
    write!(
        s,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut first = [0u8; 64];
    s.read_exact(&mut first).unwrap();
    let (busy, _, _) = request(addr, "GET", "/health", &[], b"");
    assert_eq!(busy, 503, "the slot is taken and the queue is 0");
    drop(s);
    let t1 = std::time::Instant::now();
    while request(addr, "GET", "/health", &[], b"").0 != 200 {
        assert!(
            t1.elapsed() < full,
            "the slot was not freed before the answer would have ended"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        t1.elapsed() < full / 2,
        "freed after {:?} (a full answer takes {full:?})",
        t1.elapsed()
    );
}

/// A conversation continued with the same history reuses the first turn's KV cache
/// (reported as `usage.prompt_tokens_details.cached_tokens`) and answers exactly as a
/// server that keeps no sessions.
#[test]
fn a_continued_chat_reuses_the_cache_and_answers_the_same() {
    let pooled = start(|_| {});
    let plain = start(|c| c.cached_sessions = 0);
    let q1 = json!({"role": "user", "content": "What is the capital of France?"});
    let body = |messages: Value| json!({"messages": messages, "temperature": 0, "max_tokens": 16});
    let (_, first) = post(pooled, "/v1/chat/completions", &body(json!([q1])));
    assert_eq!(first["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
    let answer = content(&first);
    let turn2 = body(
        json!([q1, {"role": "assistant", "content": answer}, {"role": "user", "content": "And of Italy?"}]),
    );
    let (_, continued) = post(pooled, "/v1/chat/completions", &turn2);
    let (_, fresh) = post(plain, "/v1/chat/completions", &turn2);
    assert_eq!(content(&continued), content(&fresh));
    let cached = continued["usage"]["prompt_tokens_details"]["cached_tokens"]
        .as_u64()
        .unwrap();
    assert_eq!(cached, first["usage"]["prompt_tokens"].as_u64().unwrap());
    assert_eq!(fresh["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
}
