//! The request bodies of the OpenAI API subset served, as serde types.
//!
//! Unknown fields are ignored (clients send many); known ones must have the right type,
//! or the request is a 400 that names the problem.

use serde::Deserialize;

/// `stop`: one string or a list of them.
#[derive(Debug, Deserialize, Clone, Default)]
#[serde(untagged)]
pub enum Stop {
    /// No stop strings.
    #[default]
    None,
    /// One stop string.
    One(String),
    /// Several.
    Many(Vec<String>),
}

impl Stop {
    /// The stop strings, empty ones dropped.
    pub fn strings(&self) -> Vec<String> {
        match self {
            Stop::None => Vec::new(),
            Stop::One(s) => vec![s.clone()],
            Stop::Many(v) => v.clone(),
        }
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect()
    }
}

/// The `powerinfer` extension object of a request.
#[derive(Debug, Deserialize, Clone, Default)]
pub struct Extension {
    /// A policy string (`dense`, `threshold:0.3`, `predictor`, …).
    pub policy: Option<String>,
}

/// Sampling fields shared by both endpoints.
#[derive(Debug, Deserialize, Clone, Default)]
pub struct Sampling {
    /// Softmax temperature (default 1, as OpenAI; 0 = greedy).
    pub temperature: Option<f32>,
    /// Nucleus cut (default 1).
    pub top_p: Option<f32>,
    /// RNG seed (default 0).
    pub seed: Option<u64>,
    /// Most tokens to generate.
    pub max_tokens: Option<usize>,
    /// Newer name of `max_tokens` in the chat API.
    pub max_completion_tokens: Option<usize>,
    /// Stop strings.
    #[serde(default)]
    pub stop: Stop,
    /// Choices (only 1 is served).
    pub n: Option<usize>,
    /// Server-sent events.
    pub stream: Option<bool>,
    /// Per-request sparsity.
    pub powerinfer: Option<Extension>,
}

/// One chat message.
#[derive(Debug, Deserialize, Clone)]
pub struct Message {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The text.
    pub content: String,
}

/// `POST /v1/chat/completions`.
#[derive(Debug, Deserialize, Clone)]
pub struct ChatRequest {
    /// Model id (must be the served one if given).
    pub model: Option<String>,
    /// The conversation.
    pub messages: Vec<Message>,
    /// Sampling and the rest.
    #[serde(flatten)]
    pub sampling: Sampling,
}

/// `POST /v1/completions`.
#[derive(Debug, Deserialize, Clone)]
pub struct CompletionRequest {
    /// Model id (must be the served one if given).
    pub model: Option<String>,
    /// The prompt text.
    pub prompt: String,
    /// Return the prompt before the completion (with logprobs for its tokens).
    #[serde(default)]
    pub echo: bool,
    /// Report log-probabilities with this many alternatives per token (0–20).
    pub logprobs: Option<usize>,
    /// Sampling and the rest.
    #[serde(flatten)]
    pub sampling: Sampling,
}
