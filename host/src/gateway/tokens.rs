//! Token counting with a real tokenizer (`o200k_base`, the GPT-4o family's), for usage
//! figures and budgets. Counts for other model families differ somewhat; budgets are
//! reconciled with the upstream's reported usage where it reports one.

use serde_json::Value;

/// Tokens in `text`.
pub fn count(text: &str) -> u64 {
    tiktoken_rs::o200k_base_singleton()
        .encode_with_special_tokens(text)
        .len() as u64
}

/// Prompt tokens of a Chat Completions request body, counted as OpenAI documents it for
/// chat models: each message's content and name plus 3 tokens of framing, plus 3 for
/// the reply's priming. Tool definitions count as their JSON text.
pub fn prompt_tokens(body: &Value) -> u64 {
    let mut total = 3;
    for m in body["messages"].as_array().into_iter().flatten() {
        total += 3;
        for key in ["content", "name"] {
            match &m[key] {
                Value::String(s) => total += count(s),
                Value::Array(parts) => {
                    for p in parts {
                        if let Some(t) = p["text"].as_str() {
                            total += count(t);
                        }
                    }
                }
                _ => {}
            }
        }
    }
    if let Some(tools) = body.get("tools") {
        total += count(&tools.to_string());
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_with_the_real_tokenizer() {
        assert_eq!(count(""), 0);
        assert_eq!(count("hello world"), 2);
        let body = serde_json::json!({"messages": [{"role": "user", "content": "hello world"}]});
        assert_eq!(prompt_tokens(&body), 3 + 3 + 2);
    }
}
