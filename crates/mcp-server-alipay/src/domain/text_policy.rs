//! What people read must be plain text: order titles and refund reasons reach the buyer through
//! Alipay's cashier, and this server's own output (links in Markdown, lists, resources) reaches
//! people and models. One policy, applied wherever such text enters.

/// Why `text` may not be shown as a title or reason (at most `max` characters), if it may not.
pub fn check(text: &str, max: usize) -> Result<(), String> {
    let count = text.chars().count();
    if text.trim().is_empty() {
        return Err("must not be empty".into());
    }
    if count > max {
        return Err(format!("must be at most {max} characters, got {count}"));
    }
    if let Some(c) = hidden_char(text) {
        return Err(format!(
            "must not contain control or bidirectional characters, found U+{:04X}",
            c as u32
        ));
    }
    match markup_or_injection(text) {
        Some(problem) => Err(problem),
        None => Ok(()),
    }
}

/// Verbs that, followed closely by [`INJECTION_OBJECTS`], try to override a model's instructions.
const INJECTION_VERBS: [&str; 5] = ["ignore", "disregard", "forget", "override", "bypass"];
/// Word stems that make such a verb an attempt on the instructions.
const INJECTION_OBJECTS: [&str; 5] = ["instruction", "prompt", "rule", "guardrail", "directive"];
/// How many words after the verb its object may come ("ignore all of the previous instructions":
/// the fifth).
const INJECTION_WINDOW: usize = 5;
/// Chinese verbs and objects, matched within [`INJECTION_WINDOW_ZH`] characters.
const INJECTION_VERBS_ZH: [&str; 4] = ["忽略", "无视", "忽视", "忘记"];
const INJECTION_OBJECTS_ZH: [&str; 5] = ["指令", "指示", "提示词", "规则", "设定"];
const INJECTION_WINDOW_ZH: usize = 8;
/// Role labels of a chat transcript, refused when followed by a colon (`SYSTEM: …`).
const ROLE_LABELS: [&str; 3] = ["system", "assistant", "developer"];

/// Why a title or reason is refused as markup or as text aimed at a model, if it is.
///
/// A title reaches the buyer through Alipay's cashier, and this server's own output (links in
/// Markdown, lists, resources) reaches people and models. The policy, precisely:
/// - HTML: `<` directly followed by a letter, `/`, `!`, `?` or `|` (a tag, closing tag, comment,
///   processing instruction, or a chat-template token such as `<|im_start|>`). `<` and `>`
///   elsewhere (`<3`, `a < b`, `->`) and fullwidth `＜＞【】` are fine.
/// - Markdown links and images: `](` and `![`. Square brackets alone are fine.
/// - Prompt injection: one of [`INJECTION_VERBS`] followed within [`INJECTION_WINDOW`] words by a
///   word starting with one of [`INJECTION_OBJECTS`] ("ignore all previous instructions",
///   "disregard the above prompt"); the Chinese equivalents (`忽略…指令`); `[INST]`; and a role
///   label of [`ROLE_LABELS`] followed by `:` or `：`.
pub fn markup_or_injection(text: &str) -> Option<String> {
    let chars: Vec<char> = text.chars().collect();
    for (i, pair) in chars.windows(2).enumerate() {
        if pair[0] == '<'
            && (pair[1].is_ascii_alphabetic() || matches!(pair[1], '/' | '!' | '?' | '|'))
        {
            let found: String = chars[i..].iter().take(12).collect();
            return Some(format!(
                "must not contain HTML or chat-template tags, found {found:?}; write plain text (a lone '<' not followed by a letter is fine)"
            ));
        }
    }
    for syntax in ["](", "!["] {
        if text.contains(syntax) {
            return Some(format!(
                "must not contain Markdown link or image syntax, found {syntax:?}; write plain text without links"
            ));
        }
    }
    let lower = text.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    for (i, word) in words.iter().enumerate() {
        if INJECTION_VERBS.contains(word)
            && let Some(object) = words[i + 1..]
                .iter()
                .take(INJECTION_WINDOW)
                .find(|w| INJECTION_OBJECTS.iter().any(|o| w.starts_with(o)))
        {
            return Some(injection(&format!("{word} … {object}")));
        }
    }
    let lower_chars: Vec<char> = lower.chars().collect();
    for verb in INJECTION_VERBS_ZH {
        for (at, _) in lower.match_indices(verb) {
            let start = lower[..at].chars().count() + verb.chars().count();
            let window: String = lower_chars[start..]
                .iter()
                .take(INJECTION_WINDOW_ZH + 3)
                .collect();
            if let Some(object) = INJECTION_OBJECTS_ZH.iter().find(|o| window.contains(*o)) {
                return Some(injection(&format!("{verb}…{object}")));
            }
        }
    }
    if lower.contains("[inst]") || lower.contains("[/inst]") {
        return Some(injection("[INST]"));
    }
    for label in ROLE_LABELS {
        for (at, _) in lower.match_indices(label) {
            let before = lower[..at].chars().next_back();
            let after = lower[at + label.len()..]
                .trim_start_matches(' ')
                .chars()
                .next();
            if !before.is_some_and(char::is_alphanumeric) && matches!(after, Some(':' | '：')) {
                return Some(injection(&format!("{label}:")));
            }
        }
    }
    None
}

fn injection(found: &str) -> String {
    format!(
        "must not contain instructions addressed to an AI model, found {found:?}; describe what is sold (or why it is refunded) in plain words"
    )
}

/// The first control, zero-width or bidirectional character of `text`, if any. The zero-width
/// joiner is allowed inside emoji sequences (👩‍👩‍👧: between two characters that are neither
/// letters, digits nor spaces), where it is part of the picture; between letters it could hide
/// a word from the checks above, so it is refused there.
fn hidden_char(text: &str) -> Option<char> {
    let chars: Vec<char> = text.chars().collect();
    let symbol = |c: Option<&char>| {
        c.is_some_and(|c| !c.is_alphanumeric() && !c.is_whitespace() && !is_hidden_char(*c))
    };
    chars.iter().enumerate().find_map(|(i, &c)| {
        let emoji_joiner = c == '\u{200D}'
            && symbol(i.checked_sub(1).and_then(|p| chars.get(p)))
            && symbol(chars.get(i + 1));
        (is_hidden_char(c) && !emoji_joiner).then_some(c)
    })
}

fn is_hidden_char(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
}
