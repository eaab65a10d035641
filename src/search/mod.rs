//! History search over every stored message, Chinese included (see
//! `docs/search.md`).
//!
//! Messages are cut into words by jieba twice: by the dictionary alone
//! (`cut` without HMM: dictionary words and single characters, in order),
//! and for search (`cut_for_search` with HMM: new words such as names and
//! "打款", and the shorter words inside long ones). A query is cut with
//! HMM; each of its words matches either itself or, as a phrase, its
//! dictionary-only cut. jieba's HMM guesses new words from their context,
//! so "车卖了" alone is cut 车卖/了 but 车/卖/了 inside "我的车卖了吗": the
//! phrase 车 卖 still finds it. So "退款" finds "订单退款的问题", "打款"
//! finds "什么时候打款", and "共和国" finds "中华人民共和国". Latin letters
//! and digits are folded to lower case; a query word of letters and digits
//! also matches longer words it begins (a plate fragment "a123" finds
//! "京A12345"). The database keeps the
//! words ([`indexer`]): FTS5 on SQLite, `tsvector` + GIN on PostgreSQL.

pub mod indexer;

use std::collections::HashSet;
use std::sync::LazyLock;

use jieba_rs::Jieba;
use serde::Serialize;

pub use indexer::SearchIndex;

/// Built once per process: loading the dictionary takes ~100 ms.
static JIEBA: LazyLock<Jieba> = LazyLock::new(Jieba::new);

/// Particles too common to be worth indexing or searching for.
const STOP: &[&str] = &["的", "了", "吗", "呢", "啊", "吧", "呀", "嘛", "哦", "么"];

/// At most this many words of a query are searched for.
pub const MAX_QUERY_WORDS: usize = 8;

/// Loads the dictionary now rather than at the first message.
pub fn warm_up() {
    LazyLock::force(&JIEBA);
}

fn word_of(raw: &str) -> Option<String> {
    let w = raw.trim();
    if !w.chars().any(char::is_alphanumeric) || STOP.contains(&w) {
        return None;
    }
    Some(w.to_lowercase())
}

/// The words a message is found by, separated by spaces: its
/// dictionary-only cut in order (phrases need the order), then the words
/// the search cut adds.
pub fn index_terms(text: &str) -> String {
    let plain: Vec<String> = JIEBA
        .cut(text, false)
        .into_iter()
        .filter_map(|t| word_of(t.word))
        .collect();
    let mut seen: HashSet<&str> = plain.iter().map(String::as_str).collect();
    let search_cut = JIEBA.cut_for_search(text, true);
    let extra: Vec<String> = search_cut.iter().filter_map(|t| word_of(t.word)).collect();
    let mut out = plain.join(" ");
    for w in &extra {
        if seen.insert(w) {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(w);
        }
    }
    out
}

/// One word of a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    pub word: String,
    /// Also matches longer words that begin with it (letters and digits).
    pub prefix: bool,
    /// Its dictionary-only cut when that is several words: matched as a
    /// phrase too.
    pub parts: Vec<String>,
}

/// The words a query looks for (all must be in a message).
pub fn query_terms(q: &str) -> Vec<Term> {
    let mut seen = HashSet::new();
    JIEBA
        .cut(q, true)
        .into_iter()
        .filter_map(|t| word_of(t.word))
        .filter(|w| seen.insert(w.clone()))
        .take(MAX_QUERY_WORDS)
        .map(|word| {
            let parts: Vec<String> = JIEBA
                .cut(&word, false)
                .into_iter()
                .filter_map(|t| word_of(t.word))
                .collect();
            Term {
                prefix: word.chars().all(|c| c.is_ascii_alphanumeric()),
                parts: if parts.len() > 1 { parts } else { Vec::new() },
                word,
            }
        })
        .collect()
}

/// The terms as an FTS5 `MATCH` expression: each a quoted string (so no
/// word is read as an operator), or its parts as a phrase; all required.
pub fn fts5_match(terms: &[Term]) -> String {
    let quote = |w: &str| format!("\"{}\"", w.replace('"', "\"\""));
    terms
        .iter()
        .map(|t| {
            let word = if t.prefix {
                quote(&t.word) + "*"
            } else {
                quote(&t.word)
            };
            if t.parts.is_empty() {
                word
            } else {
                format!("({word} OR {})", quote(&t.parts.join(" ")))
            }
        })
        .collect::<Vec<_>>()
        .join(" AND ")
}

/// The terms as a PostgreSQL `to_tsquery('simple', ..)` text: each a
/// quoted lexeme, or its parts as a phrase (`<->`); all required.
pub fn tsquery(terms: &[Term]) -> String {
    let quote = |w: &str| format!("'{}'", w.replace('\\', "\\\\").replace('\'', "''"));
    terms
        .iter()
        .map(|t| {
            let word = if t.prefix {
                quote(&t.word) + ":*"
            } else {
                quote(&t.word)
            };
            if t.parts.is_empty() {
                word
            } else {
                let phrase: Vec<String> = t.parts.iter().map(|p| quote(p)).collect();
                format!("({word} | {})", phrase.join(" <-> "))
            }
        })
        .collect::<Vec<_>>()
        .join(" & ")
}

/// A piece of a result's excerpt: a hit is one of the searched words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Piece {
    pub text: String,
    pub hit: bool,
}

/// Characters shown before the first hit, and in all.
const LEAD: usize = 24;
const SPAN: usize = 120;

/// An excerpt of `text` around the first hit, in pieces (the page shows
/// hits marked, as text). Without a hit: the beginning.
pub fn excerpt(text: &str, terms: &[Term]) -> Vec<Piece> {
    let chars: Vec<char> = text.chars().collect();
    let folded: Vec<char> = chars
        .iter()
        .map(|c| c.to_lowercase().next().unwrap_or(*c))
        .collect();
    let mut hit = vec![false; chars.len()];
    for t in terms {
        let w: Vec<char> = t.word.chars().collect();
        if w.is_empty() || w.len() > folded.len() {
            continue;
        }
        for i in 0..=folded.len() - w.len() {
            if folded[i..i + w.len()] == w[..] {
                hit[i..i + w.len()].iter_mut().for_each(|h| *h = true);
            }
        }
    }
    let first = hit.iter().position(|h| *h).unwrap_or(0);
    let start = first.saturating_sub(LEAD);
    let end = (start + SPAN).min(chars.len());
    let mut out: Vec<Piece> = Vec::new();
    if start > 0 {
        out.push(Piece {
            text: "…".into(),
            hit: false,
        });
    }
    for i in start..end {
        match out.last_mut() {
            Some(p) if p.hit == hit[i] => p.text.push(chars[i]),
            _ => out.push(Piece {
                text: chars[i].to_string(),
                hit: hit[i],
            }),
        }
    }
    if end < chars.len() {
        match out.last_mut() {
            Some(p) if !p.hit => p.text.push('…'),
            _ => out.push(Piece {
                text: "…".into(),
                hit: false,
            }),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        index_terms(s).split(' ').map(str::to_owned).collect()
    }

    /// Whether the index words of `message` satisfy the term (a phrase
    /// here: its parts adjacent).
    fn matches(indexed: &[String], t: &Term) -> bool {
        let word = indexed
            .iter()
            .any(|w| w == &t.word || (t.prefix && w.starts_with(&t.word)));
        let phrase = !t.parts.is_empty() && indexed.windows(t.parts.len()).any(|w| w == t.parts);
        word || phrase
    }

    fn term(word: &str, prefix: bool) -> Term {
        Term {
            word: word.into(),
            prefix,
            parts: Vec::new(),
        }
    }

    #[test]
    fn chinese_is_cut_into_words_and_particles_are_dropped() {
        let w = words("我想咨询一下订单退款的问题");
        for expected in ["咨询", "订单", "退款", "问题"] {
            assert!(w.contains(&expected.to_owned()), "{w:?} lacks {expected}");
        }
        assert!(!w.contains(&"的".to_owned()));
    }

    #[test]
    fn long_words_are_also_indexed_by_the_words_inside_them() {
        let w = words("中华人民共和国");
        assert!(w.contains(&"中华人民共和国".to_owned()), "{w:?}");
        assert!(w.contains(&"共和国".to_owned()), "{w:?}");
        assert!(query_terms("共和国").iter().all(|t| matches(&w, t)));
    }

    #[test]
    fn a_query_finds_the_message_it_was_cut_from() {
        for (message, query) in [
            ("请问我的车卖了吗？什么时候打款", "打款"),
            ("请问我的车卖了吗？什么时候打款", "车卖了"),
            ("请问我的车卖了吗？什么时候打款", "什么时候打款"),
            ("过户需要带身份证和行驶证", "行驶证"),
            ("二手车置换有什么优惠活动", "置换优惠"),
            ("My order ABC-123 has not arrived", "abc"),
            ("京A12345 的过户手续", "a123"),
            ("订单KF00012345进度", "kf0001"),
        ] {
            let indexed = words(message);
            for t in query_terms(query) {
                assert!(
                    matches(&indexed, &t),
                    "{query:?} term {t:?} not in {indexed:?}"
                );
            }
        }
        // Words not in the message are not found.
        let indexed = words("过户需要带身份证和行驶证");
        assert!(!query_terms("打款").iter().all(|t| matches(&indexed, t)));
    }

    #[test]
    fn latin_words_are_folded_and_become_prefixes() {
        let q = query_terms("BMW x5 退款");
        assert!(q.contains(&term("bmw", true)), "{q:?}");
        assert!(q.iter().any(|t| t.word == "退款" && !t.prefix), "{q:?}");
        assert!(query_terms("的 ， 。").is_empty());
    }

    #[test]
    fn query_syntax_is_quoted_for_both_databases() {
        let mut phrase = term("打款", false);
        phrase.parts = vec!["打".into(), "款".into()];
        let t = vec![term("a\"b", false), term("it's\\", true), phrase];
        assert_eq!(
            fts5_match(&t),
            r#""a""b" AND "it's\"* AND ("打款" OR "打 款")"#
        );
        assert_eq!(
            tsquery(&t),
            r#"'a"b' & 'it''s\\':* & ('打款' | '打' <-> '款')"#
        );
        assert!(query_terms(&"车 ".repeat(50)).len() <= MAX_QUERY_WORDS);
        let many: String = (0..20).map(|i| format!("w{i} ")).collect();
        assert_eq!(query_terms(&many).len(), MAX_QUERY_WORDS);
    }

    #[test]
    fn excerpts_mark_hits_around_the_first_one() {
        let terms = query_terms("退款");
        let p = excerpt("您好，关于退款：退款已经处理", &terms);
        let hits: Vec<&str> = p
            .iter()
            .filter(|p| p.hit)
            .map(|p| p.text.as_str())
            .collect();
        assert_eq!(hits, ["退款", "退款"]);
        let joined: String = p.iter().map(|p| p.text.as_str()).collect();
        assert_eq!(joined, "您好，关于退款：退款已经处理");

        let long = format!("{}退款{}", "前".repeat(100), "后".repeat(300));
        let p = excerpt(&long, &terms);
        let joined: String = p.iter().map(|p| p.text.as_str()).collect();
        assert!(joined.starts_with('…') && joined.ends_with('…'), "{joined}");
        assert_eq!(joined.chars().count(), SPAN + 2);
        assert!(p.iter().any(|p| p.hit && p.text == "退款"));
        assert_eq!(excerpt("", &terms), Vec::<Piece>::new());
    }
}
