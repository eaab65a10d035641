//! Whether a customer's text asks for a person: configurable keywords,
//! normalised, matched exactly or inside short messages.

/// The words that, alone or in a short message, ask for a person.
pub const DEFAULT_HANDOFF_KEYWORDS: [&str; 6] =
    ["人工", "转人工", "客服", "真人", "human", "agent"];

/// The longest message (in [`message_units`]) in which a keyword counts when
/// it is not the whole message.
pub const DEFAULT_MAX_UNITS: usize = 10;

/// Decides whether a customer's text is a request for a human.
///
/// Both the keywords and the text are normalised ([`normalise_text`]). A text
/// is a request when:
/// - it **equals** a keyword (`人工`, `转人工！`, `ＨＵＭＡＮ`), or
/// - it is **short** (at most `max_units`, default 10: one unit per
///   non-ASCII character, one per ASCII word) and **contains** a keyword
///   (`我要转人工`, `I want a human`, `找客服`). A keyword of ASCII letters and
///   digits must stand as a whole word (`agent` is not found in `agency` or
///   `agents`).
///
/// Long messages that merely mention a keyword (`我的车什么时候能卖出去，客服说下周`)
/// stay with the robot. The rule leans towards the human: a false positive
/// costs an agent a minute, a false negative traps a customer with the robot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandoffKeywords {
    keywords: Vec<String>,
    max_units: usize,
}

impl Default for HandoffKeywords {
    fn default() -> Self {
        Self::new(DEFAULT_HANDOFF_KEYWORDS, DEFAULT_MAX_UNITS)
    }
}

impl HandoffKeywords {
    /// Keywords are normalised; empty ones and repeats are dropped.
    pub fn new<I, S>(keywords: I, max_units: usize) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut list: Vec<String> = Vec::new();
        for k in keywords {
            let k = normalise_text(k.as_ref());
            if !k.is_empty() && !list.contains(&k) {
                list.push(k);
            }
        }
        Self {
            keywords: list,
            max_units,
        }
    }

    /// The normalised keywords.
    pub fn keywords(&self) -> &[String] {
        &self.keywords
    }

    /// Whether `text` asks for a human (see the type's documentation).
    pub fn is_human_request(&self, text: &str) -> bool {
        let text = normalise_text(text);
        if text.is_empty() {
            return false;
        }
        if self.keywords.contains(&text) {
            return true;
        }
        message_units(&text) <= self.max_units
            && self.keywords.iter().any(|k| contains_keyword(&text, k))
    }
}

/// Full-width forms (`Ａ`–`ｚ`, `０`–`９`, `！`…) and the ideographic space
/// become ASCII, letters lower-case, runs of white space one space, and
/// white space and punctuation at either end are removed.
pub fn normalise_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut pending_space = false;
    for c in s.chars() {
        let c = match c {
            '\u{3000}' => ' ',
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            _ => c,
        };
        if c.is_whitespace() {
            pending_space = !out.is_empty();
            continue;
        }
        if pending_space {
            out.push(' ');
            pending_space = false;
        }
        out.extend(c.to_lowercase());
    }
    out.trim_matches(|c: char| c.is_whitespace() || is_punctuation(c))
        .to_owned()
}

fn is_punctuation(c: char) -> bool {
    c.is_ascii_punctuation()
        || matches!(
            c,
            '。' | '、'
                | '～'
                | '…'
                | '·'
                | '「'
                | '」'
                | '『'
                | '』'
                | '【'
                | '】'
                | '《'
                | '》'
                | '“'
                | '”'
                | '‘'
                | '’'
        )
}

/// The length of a normalised message for the "short message" rule: one
/// unit per non-ASCII character (a Chinese character is about a word), one
/// per run of ASCII letters and digits; spaces and ASCII punctuation count
/// nothing.
pub fn message_units(text: &str) -> usize {
    let mut units = 0;
    let mut in_word = false;
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            if !in_word {
                units += 1;
            }
            in_word = true;
        } else {
            in_word = false;
            if !c.is_ascii() {
                units += 1;
            }
        }
    }
    units
}

fn contains_keyword(text: &str, keyword: &str) -> bool {
    let whole_word = keyword.bytes().all(|b| b.is_ascii_alphanumeric());
    text.match_indices(keyword).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + keyword.len()..].chars().next();
        !whole_word
            || (!before.is_some_and(|c| c.is_ascii_alphanumeric())
                && !after.is_some_and(|c| c.is_ascii_alphanumeric()))
    })
}
