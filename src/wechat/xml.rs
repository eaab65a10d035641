//! Inbound callback XML (PROTOCOL.md §1.2, §1.5, §1.6, §2.1, §2.2).
//!
//! Bodies are read with quick-xml's event [`Reader`] into a flat map of
//! element paths to text ([`parse_fields`]) and then interpreted. This keeps
//! unknown fields and message types trivial, accepts values with and without
//! CDATA, and lets user text carry what serde-based parsers choke on: emoji,
//! control characters such as U+0002 / U+001D, `<xml>` inside CDATA, `&lt;`.
//!
//! Security: a document with a DTD (`<!DOCTYPE`, hence any `<!ENTITY`) is
//! rejected with [`XmlError::Doctype`] before anything is expanded; only the
//! five predefined entities and character references are resolved.

use std::collections::BTreeMap;

use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::Event as XmlEvent;
use quick_xml::reader::Reader;

pub use super::inbound::{Event, Inbound, InboundKind, MessageBody};

/// Errors of XML parsing and field extraction.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum XmlError {
    /// The document contains a DTD (`<!DOCTYPE …>` / `<!ENTITY …>`): refused
    /// to rule out entity expansion (billion laughs) and XXE.
    #[error("XML with a DOCTYPE or ENTITY declaration is not accepted")]
    Doctype,
    /// Not well-formed XML, or not a single-root element document.
    #[error("malformed XML: {0}")]
    Malformed(String),
    /// A field the message type requires is absent.
    #[error("missing field <{0}>")]
    MissingField(&'static str),
    /// A numeric field does not hold a number.
    #[error("field <{0}> is not a valid number")]
    InvalidNumber(&'static str),
}

/// The outer body of a safe-mode (OA) or WeCom callback: the ciphertext and
/// the few plaintext fields that travel next to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// `ToUserName`: the OA's `gh_` id or the WeCom corpid.
    pub to_user: Option<String>,
    /// `Encrypt`: base64 ciphertext, exactly as received (it is signed).
    pub encrypt: String,
    /// `AgentID` (WeCom only).
    pub agent_id: Option<String>,
}

/// One open element while reading.
#[derive(Default)]
struct Node {
    name: String,
    /// Character data collected so far.
    text: String,
    /// Whitespace-only plain text seen so far, kept until we know whether the
    /// element uses CDATA (then it is formatting and dropped).
    whitespace: String,
    has_cdata: bool,
    has_children: bool,
}

impl Node {
    fn push_text(&mut self, s: &str) {
        if s.trim().is_empty() {
            self.whitespace.push_str(s);
        } else {
            self.flush_whitespace();
            self.text.push_str(s);
        }
    }

    fn push_significant(&mut self, s: &str, is_cdata: bool) {
        self.has_cdata |= is_cdata;
        self.flush_whitespace();
        self.text.push_str(s);
    }

    fn flush_whitespace(&mut self) {
        if !self.has_cdata {
            self.text.push_str(&self.whitespace);
        }
        self.whitespace.clear();
    }

    /// The element's text: whitespace around CDATA is formatting, whitespace
    /// in a plain-text element is content.
    fn finish(mut self) -> String {
        self.flush_whitespace();
        self.text
    }
}

/// Reads a single-root XML document into a map of element path to text.
///
/// Paths are relative to the root: `Content`, `Video/MediaId`,
/// `Articles/item/Title`. Only leaf elements get an entry; on repeated paths
/// the first occurrence wins. Values are returned exactly (no trimming, no
/// line-ending normalisation). Attributes, comments and processing
/// instructions are ignored.
pub fn parse_fields(xml: &str) -> Result<BTreeMap<String, String>, XmlError> {
    let mut reader = Reader::from_str(xml);
    let mut fields = BTreeMap::new();
    let mut stack: Vec<Node> = Vec::new();
    let mut root_seen = false;

    loop {
        let event = reader
            .read_event()
            .map_err(|e| classify_error(xml, &e, reader.error_position()))?;
        match event {
            XmlEvent::DocType(_) => return Err(XmlError::Doctype),
            XmlEvent::Start(start) => {
                open_element(&mut stack, &mut root_seen)?;
                stack.push(Node {
                    name: start.name().as_ref().to_owned(),
                    ..Node::default()
                });
            }
            XmlEvent::Empty(start) => {
                open_element(&mut stack, &mut root_seen)?;
                if !stack.is_empty() {
                    let name = start.name().as_ref().to_owned();
                    fields
                        .entry(child_path(&stack, &name))
                        .or_insert_with(String::new);
                }
            }
            XmlEvent::End(_) => {
                let node = stack.pop().ok_or_else(|| malformed("unexpected end tag"))?;
                if !stack.is_empty() && !node.has_children {
                    let path = child_path(&stack, &node.name);
                    fields.entry(path).or_insert_with(|| node.finish());
                }
            }
            XmlEvent::Text(text) => match stack.last_mut() {
                Some(node) => node.push_text(&text),
                None if text.trim().is_empty() => {}
                None => return Err(malformed("text outside the root element")),
            },
            XmlEvent::CData(cdata) => {
                let node = stack
                    .last_mut()
                    .ok_or_else(|| malformed("CDATA outside the root element"))?;
                node.push_significant(&cdata, true);
            }
            XmlEvent::GeneralRef(reference) => {
                let node = stack
                    .last_mut()
                    .ok_or_else(|| malformed("reference outside the root element"))?;
                let resolved = match reference.resolve_char_ref() {
                    Ok(Some(ch)) => ch.to_string(),
                    Ok(None) => resolve_predefined_entity(&reference)
                        .ok_or_else(|| malformed("undefined entity reference"))?
                        .to_owned(),
                    Err(_) => return Err(malformed("invalid character reference")),
                };
                node.push_significant(&resolved, false);
            }
            XmlEvent::Comment(_) | XmlEvent::Decl(_) | XmlEvent::PI(_) => {}
            XmlEvent::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err(malformed("unclosed element"));
    }
    if !root_seen {
        return Err(malformed("no root element"));
    }
    Ok(fields)
}

/// Bookkeeping for a new element: marks the parent as non-leaf and refuses
/// a second root.
fn open_element(stack: &mut [Node], root_seen: &mut bool) -> Result<(), XmlError> {
    match stack.last_mut() {
        Some(parent) => parent.has_children = true,
        None if *root_seen => return Err(malformed("more than one root element")),
        None => *root_seen = true,
    }
    Ok(())
}

/// Path of a child of the innermost open element, relative to the root.
fn child_path(stack: &[Node], name: &str) -> String {
    let mut path = String::new();
    for node in stack.iter().skip(1) {
        path.push_str(&node.name);
        path.push('/');
    }
    path.push_str(name);
    path
}

fn malformed(what: &str) -> XmlError {
    XmlError::Malformed(what.to_owned())
}

/// quick-xml does not know `<!ENTITY` outside a DTD and fails with a syntax
/// error; report DTD markup as [`XmlError::Doctype`] so it is recognisable.
fn classify_error(xml: &str, err: &quick_xml::Error, position: u64) -> XmlError {
    let has_dtd_markup = xml
        .as_bytes()
        .windows(8)
        .any(|w| w.eq_ignore_ascii_case(b"<!DOCTYP") || w.eq_ignore_ascii_case(b"<!ENTITY"));
    if has_dtd_markup {
        XmlError::Doctype
    } else {
        XmlError::Malformed(format!("{err} (at byte {position})"))
    }
}

/// Parses the outer body of an encrypted callback (safe mode, compat mode
/// or WeCom): requires a non-empty `Encrypt`.
pub fn parse_envelope(xml: &str) -> Result<Envelope, XmlError> {
    let mut fields = parse_fields(xml)?;
    let encrypt = fields
        .remove("Encrypt")
        .filter(|e| !e.trim().is_empty())
        .ok_or(XmlError::MissingField("Encrypt"))?;
    Ok(Envelope {
        to_user: fields.remove("ToUserName"),
        encrypt,
        agent_id: fields.remove("AgentID"),
    })
}

/// Parses a plaintext message or event (after decryption in safe mode).
/// Unknown `MsgType` / `Event` values are kept as `Unknown`.
pub fn parse(xml: &str) -> Result<Inbound, XmlError> {
    Inbound::from_fields(parse_fields(xml)?, xml)
}

#[cfg(test)]
#[path = "xml_tests.rs"]
mod tests;
