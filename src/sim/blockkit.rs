//! Slack's Block Kit rules, as the simulated Slack enforces them on every message and modal.
//!
//! [`validate_message`] checks what `chat.postMessage`, `chat.update` and `chat.postEphemeral`
//! receive (top-level `text` and `blocks`); [`validate_view`] checks the `view` of `views.open`.
//! A refusal carries Slack's error code and one problem per offending field, each naming the
//! field with a JSON pointer, formatted as Slack formats `response_metadata.messages`
//! (`[ERROR] <what> [json-pointer:/blocks/2/elements/1/action_id]`).
//!
//! The rules are the documented limits of Slack's Block Kit reference (each limit carries its
//! source). Where the reference is loose, the strict reading is encoded: `action_id` unique across
//! the whole message, every `confirm` field required, lengths counted in UTF-16 code units (never
//! fewer than characters), text that is only whitespace refused, fields Slack does not document
//! refused, and block or element types the simulator does not model refused rather than waved
//! through. This module is pure (no I/O) and must never be looser than Slack: when in doubt, refuse.

use serde_json::{Map, Value};
use std::collections::HashSet;

// Sources (all fetched from Slack's reference, docs.slack.dev / api.slack.com):
// [msg]     https://docs.slack.dev/reference/methods/chat.postMessage  (text, blocks, errors)
// [blocks]  https://docs.slack.dev/reference/block-kit/blocks          (≤ 50 blocks in a message)
// [section] https://docs.slack.dev/reference/block-kit/blocks/section-block
// [header]  https://docs.slack.dev/reference/block-kit/blocks/header-block
// [context] https://docs.slack.dev/reference/block-kit/blocks/context-block
// [actions] https://docs.slack.dev/reference/block-kit/blocks/actions-block
// [image]   https://docs.slack.dev/reference/block-kit/blocks/image-block
// [input]   https://docs.slack.dev/reference/block-kit/blocks/input-block
// [button]  https://docs.slack.dev/reference/block-kit/block-elements/button-element
// [select]  https://docs.slack.dev/reference/block-kit/block-elements/select-menu-element#static_select
// [ptinput] https://docs.slack.dev/reference/block-kit/block-elements/plain-text-input-element
// [text]    https://docs.slack.dev/reference/block-kit/composition-objects/text-object
// [confirm] https://docs.slack.dev/reference/block-kit/composition-objects/confirmation-dialog-object
// [option]  https://docs.slack.dev/reference/block-kit/composition-objects/option-object
// [group]   https://docs.slack.dev/reference/block-kit/composition-objects/option-group-object
// [modal]   https://docs.slack.dev/reference/views/modal-views

/// [msg] "The text field is truncated/refused beyond 40,000 characters": `msg_too_long`.
pub const MAX_MESSAGE_TEXT: usize = 40_000;
/// [blocks] "You can include up to 50 blocks in each message".
pub const MAX_MESSAGE_BLOCKS: usize = 50;
/// [modal] "blocks: … Max of 100 blocks."
pub const MAX_MODAL_BLOCKS: usize = 100;
/// Slack answers `msg_blocks_too_long` for messages whose blocks carry too much text in total.
/// The number is not documented; it was observed at about 13,200 characters of text
/// (slackapi/bolt-js issue #2509). The simulator refuses beyond 12,000, below every observation.
pub const MAX_BLOCKS_TEXT_TOTAL: usize = 12_000;
/// [text] "text: … Minimum 1 character, maximum 3000 characters" (any text object).
pub const MAX_TEXT: usize = 3000;
/// [section] "text: Maximum length for the text in this field is 3000 characters."
pub const MAX_SECTION_TEXT: usize = 3000;
/// [section] "fields: Maximum number of items is 10."
pub const MAX_SECTION_FIELDS: usize = 10;
/// [section] "fields: Maximum length for the text in each item is 2000 characters."
pub const MAX_SECTION_FIELD_TEXT: usize = 2000;
/// [header] "text: … plain_text … Maximum length for the text in this field is 150 characters."
pub const MAX_HEADER_TEXT: usize = 150;
/// [context] "elements: … Maximum number of items is 10." (and at least one)
pub const MAX_CONTEXT_ELEMENTS: usize = 10;
/// [actions] "elements: … There is a maximum of 25 elements in each action block."
pub const MAX_ACTIONS_ELEMENTS: usize = 25;
/// [blocks] "block_id: Maximum length for this field is 255 characters." (unique per message)
pub const MAX_BLOCK_ID: usize = 255;
/// [button] "action_id: … Maximum length is 255 characters." (unique in the block; strict: message)
pub const MAX_ACTION_ID: usize = 255;
/// [button] "text: … plain_text. Maximum length for the text in this field is 75 characters."
pub const MAX_BUTTON_TEXT: usize = 75;
/// [button] "value: … Maximum length is 2000 characters."
pub const MAX_BUTTON_VALUE: usize = 2000;
/// [button] "url: … Maximum length is 3000 characters." (image_url has the same limit [image])
pub const MAX_URL: usize = 3000;
/// [button] "accessibility_label: … Maximum length is 75 characters."
pub const MAX_ACCESSIBILITY_LABEL: usize = 75;
/// [confirm] "title: A plain_text text object … Maximum length … 100 characters."
pub const MAX_CONFIRM_TITLE: usize = 100;
/// [confirm] "text: … Maximum length for the text in this field is 300 characters."
pub const MAX_CONFIRM_TEXT: usize = 300;
/// [confirm] "confirm: … plain_text … Maximum length … 30 characters." (deny: the same)
pub const MAX_CONFIRM_BUTTON: usize = 30;
/// [select] "options: … Maximum number of options is 100." (option_groups: 100 groups [select])
pub const MAX_SELECT_OPTIONS: usize = 100;
/// [select] "placeholder: … Maximum length for the text in this field is 150 characters."
pub const MAX_PLACEHOLDER: usize = 150;
/// [option] "text: … Maximum length for the text in this field is 75 characters."
pub const MAX_OPTION_TEXT: usize = 75;
/// [option] "value: … Maximum length for this field is 150 characters."
pub const MAX_OPTION_VALUE: usize = 150;
/// [option] "description: … Maximum length for the text in this field is 75 characters."
pub const MAX_OPTION_DESCRIPTION: usize = 75;
/// [group] "label: … plain_text … Maximum length for the text in this field is 75 characters."
pub const MAX_GROUP_LABEL: usize = 75;
/// [image] "alt_text: … Maximum length for this field is 2000 characters." (title: 2000)
pub const MAX_ALT_TEXT: usize = 2000;
/// [input] "label: … plain_text … Maximum length … 2000 characters." (hint: 2000)
pub const MAX_INPUT_LABEL: usize = 2000;
/// [ptinput] "min_length: … Maximum value is 3000." / "max_length: … Minimum value is 1."
pub const MAX_INPUT_LENGTH: u64 = 3000;
/// [modal] "title: … plain_text … max length of 24 characters." (close, submit: the same)
pub const MAX_MODAL_TITLE: usize = 24;
/// [modal] "private_metadata: … Max length of 3000 characters."
pub const MAX_PRIVATE_METADATA: usize = 3000;
/// [modal] "callback_id: … Max length of 255 characters."
pub const MAX_CALLBACK_ID: usize = 255;

/// One offending field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// JSON pointer to the field (`/blocks/2/elements/1/action_id`).
    pub pointer: String,
    /// What is wrong with it.
    pub message: String,
}

impl Problem {
    /// As Slack writes it in `response_metadata.messages`.
    pub fn slack_message(&self) -> String {
        format!("[ERROR] {} [json-pointer:{}]", self.message, self.pointer)
    }
}

/// Why Slack refuses a message or view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Top-level `text` longer than [`MAX_MESSAGE_TEXT`].
    MsgTooLong,
    /// The blocks carry more than [`MAX_BLOCKS_TEXT_TOTAL`] of text.
    BlocksTooLong,
    /// `blocks` is not a JSON array.
    InvalidBlocksFormat,
    /// Neither `text` nor `blocks`.
    NoText,
    /// Block Kit problems in a message.
    InvalidBlocks(Vec<Problem>),
    /// Problems in a view (views.open answers `invalid_arguments`).
    InvalidArguments(Vec<Problem>),
}

impl Refusal {
    /// Slack's `error` code.
    pub fn error(&self) -> &'static str {
        match self {
            Refusal::MsgTooLong => "msg_too_long",
            Refusal::BlocksTooLong => "msg_blocks_too_long",
            Refusal::InvalidBlocksFormat => "invalid_blocks_format",
            Refusal::NoText => "no_text",
            Refusal::InvalidBlocks(_) => "invalid_blocks",
            Refusal::InvalidArguments(_) => "invalid_arguments",
        }
    }

    /// The problems, as `response_metadata.messages` (empty for the codes that carry none).
    pub fn messages(&self) -> Vec<String> {
        match self {
            Refusal::InvalidBlocks(p) | Refusal::InvalidArguments(p) => {
                p.iter().map(Problem::slack_message).collect()
            }
            _ => Vec::new(),
        }
    }

    /// The problems (empty for the codes that carry none).
    pub fn problems(&self) -> &[Problem] {
        match self {
            Refusal::InvalidBlocks(p) | Refusal::InvalidArguments(p) => p,
            _ => &[],
        }
    }
}

/// Length as Slack's limits count it. Slack says "characters"; UTF-16 code units are never fewer
/// than characters, so counting them is the strict reading (an emoji counts 2).
pub fn slack_len(s: &str) -> usize {
    s.encode_utf16().count()
}

/// Checks a message as `chat.postMessage`/`chat.update`/`chat.postEphemeral` receive it.
pub fn validate_message(text: Option<&str>, blocks: Option<&Value>) -> Result<(), Refusal> {
    if let Some(t) = text {
        if slack_len(t) > MAX_MESSAGE_TEXT {
            return Err(Refusal::MsgTooLong);
        }
    }
    let blocks = match blocks {
        None | Some(Value::Null) => None,
        Some(Value::Array(list)) => Some(list),
        Some(_) => return Err(Refusal::InvalidBlocksFormat),
    };
    let has_text = text.is_some_and(|t| !t.is_empty());
    let has_blocks = blocks.is_some_and(|b| !b.is_empty());
    if !has_text && !has_blocks {
        return Err(Refusal::NoText);
    }
    let Some(blocks) = blocks else {
        return Ok(());
    };
    let mut c = Checker::new(Surface::Message);
    c.blocks(blocks, "/blocks");
    if !c.problems.is_empty() {
        return Err(Refusal::InvalidBlocks(c.problems));
    }
    if c.text_total > MAX_BLOCKS_TEXT_TOTAL {
        return Err(Refusal::BlocksTooLong);
    }
    Ok(())
}

/// Checks the `view` of `views.open` (a modal).
pub fn validate_view(view: &Value) -> Result<(), Refusal> {
    let mut c = Checker::new(Surface::Modal);
    c.view(view, "/view");
    if c.problems.is_empty() {
        Ok(())
    } else {
        Err(Refusal::InvalidArguments(c.problems))
    }
}

/// Where blocks are shown; modals allow more blocks and input blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Surface {
    Message,
    Modal,
}

/// What a text object may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TextKind {
    /// `plain_text` only.
    Plain,
    /// `plain_text` or `mrkdwn`.
    Any,
}

struct Checker {
    surface: Surface,
    problems: Vec<Problem>,
    block_ids: HashSet<String>,
    action_ids: HashSet<String>,
    text_total: usize,
}

impl Checker {
    fn new(surface: Surface) -> Self {
        Checker {
            surface,
            problems: Vec::new(),
            block_ids: HashSet::new(),
            action_ids: HashSet::new(),
            text_total: 0,
        }
    }

    fn err(&mut self, pointer: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            pointer: pointer.into(),
            message: message.into(),
        });
    }

    /// `v` as an object whose keys are all in `allowed`; each other key is a problem.
    fn object<'a>(
        &mut self,
        v: &'a Value,
        ptr: &str,
        allowed: &[&str],
    ) -> Option<&'a Map<String, Value>> {
        let Some(obj) = v.as_object() else {
            self.err(ptr, "must provide an object");
            return None;
        };
        for key in obj.keys() {
            if !allowed.contains(&key.as_str()) {
                self.err(format!("{ptr}/{key}"), "invalid additional property");
            }
        }
        Some(obj)
    }

    /// A string field of at most `max`, never empty; a problem when required and absent.
    fn string<'a>(
        &mut self,
        obj: &'a Map<String, Value>,
        key: &str,
        ptr: &str,
        max: usize,
        required: bool,
    ) -> Option<&'a str> {
        let at = format!("{ptr}/{key}");
        match obj.get(key) {
            None if required => {
                self.err(at, "missing required field");
                None
            }
            None => None,
            Some(Value::String(s)) => {
                if s.is_empty() {
                    self.err(at, "must be more than 0 characters");
                } else if slack_len(s) > max {
                    self.err(at, format!("must be less than {} characters", max + 1));
                }
                Some(s)
            }
            Some(_) => {
                self.err(at, "must be a string");
                None
            }
        }
    }

    fn boolean(&mut self, obj: &Map<String, Value>, key: &str, ptr: &str) {
        if let Some(v) = obj.get(key) {
            if !v.is_boolean() {
                self.err(format!("{ptr}/{key}"), "must be a boolean");
            }
        }
    }

    fn url(&mut self, obj: &Map<String, Value>, key: &str, ptr: &str, required: bool) {
        if let Some(u) = self.string(obj, key, ptr, MAX_URL, required) {
            let ok = url::Url::parse(u).is_ok_and(|p| matches!(p.scheme(), "http" | "https"));
            if !ok {
                self.err(format!("{ptr}/{key}"), "must be a valid http(s) URL");
            }
        }
    }

    /// A text object at `obj[key]`: `plain_text` (or `mrkdwn` where allowed), 1..=`max`.
    fn text_field(
        &mut self,
        obj: &Map<String, Value>,
        key: &str,
        ptr: &str,
        kind: TextKind,
        max: usize,
        required: bool,
    ) {
        let at = format!("{ptr}/{key}");
        match obj.get(key) {
            None if required => self.err(at, "missing required field"),
            None => {}
            Some(v) => self.text(v, &at, kind, max),
        }
    }

    fn text(&mut self, v: &Value, ptr: &str, kind: TextKind, max: usize) {
        let Some(obj) = self.object(v, ptr, &["type", "text", "emoji", "verbatim"]) else {
            return;
        };
        let ty = obj.get("type").and_then(Value::as_str);
        match (ty, kind) {
            (None, _) => self.err(format!("{ptr}/type"), "missing required field"),
            (Some("plain_text"), _) | (Some("mrkdwn"), TextKind::Any) => {}
            (Some("mrkdwn"), TextKind::Plain) => {
                self.err(format!("{ptr}/type"), "must be plain_text here")
            }
            (Some(other), _) => self.err(
                format!("{ptr}/type"),
                format!("must be plain_text or mrkdwn, not `{other}`"),
            ),
        }
        if let Some(t) = self.string(obj, "text", ptr, max.min(MAX_TEXT), true) {
            if !t.is_empty() && t.trim().is_empty() {
                self.err(
                    format!("{ptr}/text"),
                    "must contain a non-whitespace character",
                );
            }
            self.text_total += slack_len(t);
        }
        self.boolean(obj, "emoji", ptr);
        self.boolean(obj, "verbatim", ptr);
        if obj.contains_key("emoji") && ty == Some("mrkdwn") {
            self.err(format!("{ptr}/emoji"), "only plain_text takes emoji");
        }
        if obj.contains_key("verbatim") && ty == Some("plain_text") {
            self.err(format!("{ptr}/verbatim"), "only mrkdwn takes verbatim");
        }
    }

    fn block_id(&mut self, obj: &Map<String, Value>, ptr: &str) {
        if let Some(id) = self.string(obj, "block_id", ptr, MAX_BLOCK_ID, false) {
            if !self.block_ids.insert(id.to_string()) {
                self.err(
                    format!("{ptr}/block_id"),
                    format!("duplicate block_id `{id}` in this message"),
                );
            }
        }
    }

    fn action_id(&mut self, obj: &Map<String, Value>, ptr: &str) {
        if let Some(id) = self.string(obj, "action_id", ptr, MAX_ACTION_ID, false) {
            if !self.action_ids.insert(id.to_string()) {
                self.err(
                    format!("{ptr}/action_id"),
                    format!("duplicate action_id `{id}`: each action_id must be unique"),
                );
            }
        }
    }

    fn view(&mut self, v: &Value, ptr: &str) {
        let allowed = [
            "type",
            "title",
            "blocks",
            "close",
            "submit",
            "private_metadata",
            "callback_id",
            "clear_on_close",
            "notify_on_close",
            "external_id",
            "submit_disabled",
        ];
        let Some(obj) = self.object(v, ptr, &allowed) else {
            return;
        };
        match obj.get("type").and_then(Value::as_str) {
            Some("modal") => {}
            None => self.err(format!("{ptr}/type"), "missing required field"),
            Some(_) => self.err(format!("{ptr}/type"), "views.open takes a modal"),
        }
        self.text_field(obj, "title", ptr, TextKind::Plain, MAX_MODAL_TITLE, true);
        self.text_field(obj, "close", ptr, TextKind::Plain, MAX_MODAL_TITLE, false);
        self.text_field(obj, "submit", ptr, TextKind::Plain, MAX_MODAL_TITLE, false);
        self.string(obj, "private_metadata", ptr, MAX_PRIVATE_METADATA, false);
        self.string(obj, "callback_id", ptr, MAX_CALLBACK_ID, false);
        self.string(obj, "external_id", ptr, MAX_CALLBACK_ID, false);
        for key in ["clear_on_close", "notify_on_close", "submit_disabled"] {
            self.boolean(obj, key, ptr);
        }
        match obj.get("blocks") {
            Some(Value::Array(blocks)) => {
                // [modal] "submit is required when an input block is within the blocks array."
                let has_input = blocks.iter().any(|b| b["type"] == "input");
                if has_input && !obj.contains_key("submit") {
                    self.err(
                        format!("{ptr}/submit"),
                        "required when the view has an input block",
                    );
                }
                self.blocks(blocks, &format!("{ptr}/blocks"));
            }
            Some(_) => self.err(format!("{ptr}/blocks"), "must be an array"),
            None => self.err(format!("{ptr}/blocks"), "missing required field"),
        }
    }

    fn blocks(&mut self, blocks: &[Value], ptr: &str) {
        let max = match self.surface {
            Surface::Message => MAX_MESSAGE_BLOCKS,
            Surface::Modal => MAX_MODAL_BLOCKS,
        };
        if blocks.len() > max {
            self.err(ptr, format!("no more than {max} items allowed"));
        }
        for (i, b) in blocks.iter().enumerate() {
            self.block(b, &format!("{ptr}/{i}"));
        }
    }

    fn block(&mut self, b: &Value, ptr: &str) {
        let ty = b.get("type").and_then(Value::as_str).unwrap_or_default();
        match ty {
            "section" => {
                let Some(obj) = self.object(
                    b,
                    ptr,
                    &["type", "block_id", "text", "fields", "accessory", "expand"],
                ) else {
                    return;
                };
                self.block_id(obj, ptr);
                self.boolean(obj, "expand", ptr);
                if !obj.contains_key("text") && !obj.contains_key("fields") {
                    self.err(format!("{ptr}/text"), "a section needs text or fields");
                }
                self.text_field(obj, "text", ptr, TextKind::Any, MAX_SECTION_TEXT, false);
                match obj.get("fields") {
                    None => {}
                    Some(Value::Array(fields)) => {
                        if fields.is_empty() {
                            self.err(format!("{ptr}/fields"), "must have at least 1 item");
                        }
                        if fields.len() > MAX_SECTION_FIELDS {
                            self.err(
                                format!("{ptr}/fields"),
                                format!("no more than {MAX_SECTION_FIELDS} items allowed"),
                            );
                        }
                        for (i, f) in fields.iter().enumerate() {
                            self.text(
                                f,
                                &format!("{ptr}/fields/{i}"),
                                TextKind::Any,
                                MAX_SECTION_FIELD_TEXT,
                            );
                        }
                    }
                    Some(_) => self.err(format!("{ptr}/fields"), "must be an array"),
                }
                if let Some(acc) = obj.get("accessory") {
                    self.element(
                        acc,
                        &format!("{ptr}/accessory"),
                        &["button", "static_select", "image"],
                    );
                }
            }
            "header" => {
                let Some(obj) = self.object(b, ptr, &["type", "block_id", "text"]) else {
                    return;
                };
                self.block_id(obj, ptr);
                self.text_field(obj, "text", ptr, TextKind::Plain, MAX_HEADER_TEXT, true);
            }
            "divider" => {
                if let Some(obj) = self.object(b, ptr, &["type", "block_id"]) {
                    self.block_id(obj, ptr);
                }
            }
            "context" => {
                let Some(obj) = self.object(b, ptr, &["type", "block_id", "elements"]) else {
                    return;
                };
                self.block_id(obj, ptr);
                let Some(elements) = self.array(obj, "elements", ptr, MAX_CONTEXT_ELEMENTS) else {
                    return;
                };
                for (i, e) in elements.iter().enumerate() {
                    let at = format!("{ptr}/elements/{i}");
                    match e.get("type").and_then(Value::as_str) {
                        Some("plain_text" | "mrkdwn") => self.text(e, &at, TextKind::Any, MAX_TEXT),
                        _ => self.element(e, &at, &["image"]),
                    }
                }
            }
            "actions" => {
                let Some(obj) = self.object(b, ptr, &["type", "block_id", "elements"]) else {
                    return;
                };
                self.block_id(obj, ptr);
                let Some(elements) = self.array(obj, "elements", ptr, MAX_ACTIONS_ELEMENTS) else {
                    return;
                };
                for (i, e) in elements.iter().enumerate() {
                    self.element(
                        e,
                        &format!("{ptr}/elements/{i}"),
                        &["button", "static_select"],
                    );
                }
            }
            "image" => {
                let Some(obj) = self.object(
                    b,
                    ptr,
                    &["type", "block_id", "image_url", "alt_text", "title"],
                ) else {
                    return;
                };
                self.block_id(obj, ptr);
                self.url(obj, "image_url", ptr, true);
                self.string(obj, "alt_text", ptr, MAX_ALT_TEXT, true);
                self.text_field(obj, "title", ptr, TextKind::Plain, MAX_ALT_TEXT, false);
            }
            "input" if self.surface == Surface::Modal => {
                let allowed = [
                    "type",
                    "block_id",
                    "label",
                    "element",
                    "hint",
                    "optional",
                    "dispatch_action",
                ];
                let Some(obj) = self.object(b, ptr, &allowed) else {
                    return;
                };
                self.block_id(obj, ptr);
                self.text_field(obj, "label", ptr, TextKind::Plain, MAX_INPUT_LABEL, true);
                self.text_field(obj, "hint", ptr, TextKind::Plain, MAX_INPUT_LABEL, false);
                self.boolean(obj, "optional", ptr);
                self.boolean(obj, "dispatch_action", ptr);
                match obj.get("element") {
                    Some(e) => self.element(
                        e,
                        &format!("{ptr}/element"),
                        &["plain_text_input", "static_select"],
                    ),
                    None => self.err(format!("{ptr}/element"), "missing required field"),
                }
            }
            "" => self.err(format!("{ptr}/type"), "missing required field"),
            other => self.err(
                format!("{ptr}/type"),
                format!(
                    "unsupported block type `{other}` here (the simulator models section, header, \
                     divider, context, actions, image, and input in modals)"
                ),
            ),
        }
    }

    /// `obj[key]` as an array of 1..=`max` items.
    fn array<'a>(
        &mut self,
        obj: &'a Map<String, Value>,
        key: &str,
        ptr: &str,
        max: usize,
    ) -> Option<&'a Vec<Value>> {
        let at = format!("{ptr}/{key}");
        match obj.get(key) {
            Some(Value::Array(items)) => {
                if items.is_empty() {
                    self.err(at, "must have at least 1 item");
                } else if items.len() > max {
                    self.err(at, format!("no more than {max} items allowed"));
                }
                Some(items)
            }
            Some(_) => {
                self.err(at, "must be an array");
                None
            }
            None => {
                self.err(at, "missing required field");
                None
            }
        }
    }

    fn element(&mut self, e: &Value, ptr: &str, allowed_types: &[&str]) {
        let ty = e.get("type").and_then(Value::as_str).unwrap_or_default();
        if !allowed_types.contains(&ty) {
            let msg = if ty.is_empty() {
                "missing required field".to_string()
            } else {
                format!(
                    "unsupported element type `{ty}` here (allowed: {})",
                    allowed_types.join(", ")
                )
            };
            self.err(format!("{ptr}/type"), msg);
            return;
        }
        match ty {
            "button" => {
                let allowed = [
                    "type",
                    "text",
                    "action_id",
                    "url",
                    "value",
                    "style",
                    "confirm",
                    "accessibility_label",
                ];
                let Some(obj) = self.object(e, ptr, &allowed) else {
                    return;
                };
                self.text_field(obj, "text", ptr, TextKind::Plain, MAX_BUTTON_TEXT, true);
                self.action_id(obj, ptr);
                self.url(obj, "url", ptr, false);
                self.string(obj, "value", ptr, MAX_BUTTON_VALUE, false);
                self.string(
                    obj,
                    "accessibility_label",
                    ptr,
                    MAX_ACCESSIBILITY_LABEL,
                    false,
                );
                self.style(obj, ptr);
                if let Some(c) = obj.get("confirm") {
                    self.confirm(c, &format!("{ptr}/confirm"));
                }
            }
            "static_select" => {
                let allowed = [
                    "type",
                    "action_id",
                    "placeholder",
                    "options",
                    "option_groups",
                    "initial_option",
                    "confirm",
                    "focus_on_load",
                ];
                let Some(obj) = self.input_element(e, ptr, &allowed) else {
                    return;
                };
                match (
                    obj.contains_key("options"),
                    obj.contains_key("option_groups"),
                ) {
                    (true, true) => self.err(
                        format!("{ptr}/option_groups"),
                        "give options or option_groups, not both",
                    ),
                    (false, false) => self.err(format!("{ptr}/options"), "missing required field"),
                    (true, false) => {
                        if let Some(options) = self.array(obj, "options", ptr, MAX_SELECT_OPTIONS) {
                            for (i, o) in options.iter().enumerate() {
                                self.option(o, &format!("{ptr}/options/{i}"));
                            }
                        }
                    }
                    (false, true) => {
                        if let Some(groups) =
                            self.array(obj, "option_groups", ptr, MAX_SELECT_OPTIONS)
                        {
                            for (g, group) in groups.iter().enumerate() {
                                let at = format!("{ptr}/option_groups/{g}");
                                let Some(gobj) = self.object(group, &at, &["label", "options"])
                                else {
                                    continue;
                                };
                                self.text_field(
                                    gobj,
                                    "label",
                                    &at,
                                    TextKind::Plain,
                                    MAX_GROUP_LABEL,
                                    true,
                                );
                                if let Some(options) =
                                    self.array(gobj, "options", &at, MAX_SELECT_OPTIONS)
                                {
                                    for (i, o) in options.iter().enumerate() {
                                        self.option(o, &format!("{at}/options/{i}"));
                                    }
                                }
                            }
                        }
                    }
                }
                if let Some(o) = obj.get("initial_option") {
                    self.option(o, &format!("{ptr}/initial_option"));
                    // [select] "initial_option: A single option that exactly matches one of the
                    // options within options or option_groups."
                    let listed = obj
                        .get("options")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .chain(
                            obj.get("option_groups")
                                .and_then(Value::as_array)
                                .into_iter()
                                .flatten()
                                .filter_map(|g| g.get("options").and_then(Value::as_array))
                                .flatten(),
                        )
                        .any(|listed| listed == o);
                    if !listed {
                        self.err(
                            format!("{ptr}/initial_option"),
                            "must exactly match one of the options",
                        );
                    }
                }
                self.select_values(obj, ptr);
                if let Some(c) = obj.get("confirm") {
                    self.confirm(c, &format!("{ptr}/confirm"));
                }
            }
            "plain_text_input" => {
                let allowed = [
                    "type",
                    "action_id",
                    "placeholder",
                    "initial_value",
                    "multiline",
                    "min_length",
                    "max_length",
                    "focus_on_load",
                ];
                let Some(obj) = self.input_element(e, ptr, &allowed) else {
                    return;
                };
                let initial = self.string(obj, "initial_value", ptr, MAX_TEXT, false);
                self.boolean(obj, "multiline", ptr);
                let min = self.number(obj, "min_length", ptr, 0);
                let max = self.number(obj, "max_length", ptr, 1);
                if let (Some(min), Some(max)) = (min, max) {
                    if min > max {
                        self.err(
                            format!("{ptr}/min_length"),
                            "must not be greater than max_length",
                        );
                    }
                }
                // Strict reading: an initial value the input itself would refuse is refused.
                if let Some(initial) = initial {
                    let n = slack_len(initial) as u64;
                    if max.is_some_and(|max| n > max) || min.is_some_and(|min| n < min) {
                        self.err(
                            format!("{ptr}/initial_value"),
                            "must be within min_length and max_length",
                        );
                    }
                }
            }
            "image" => {
                let Some(obj) = self.object(e, ptr, &["type", "image_url", "alt_text"]) else {
                    return;
                };
                self.url(obj, "image_url", ptr, true);
                self.string(obj, "alt_text", ptr, MAX_ALT_TEXT, true);
            }
            _ => {}
        }
    }

    /// What selects and text inputs share: their fields, `action_id`, `placeholder`
    /// (plain_text, at most 150) and `focus_on_load`.
    fn input_element<'a>(
        &mut self,
        e: &'a Value,
        ptr: &str,
        allowed: &[&str],
    ) -> Option<&'a Map<String, Value>> {
        let obj = self.object(e, ptr, allowed)?;
        self.action_id(obj, ptr);
        self.text_field(
            obj,
            "placeholder",
            ptr,
            TextKind::Plain,
            MAX_PLACEHOLDER,
            false,
        );
        self.boolean(obj, "focus_on_load", ptr);
        Some(obj)
    }

    /// An integer field in `least..=MAX_INPUT_LENGTH`.
    fn number(
        &mut self,
        obj: &Map<String, Value>,
        key: &str,
        ptr: &str,
        least: u64,
    ) -> Option<u64> {
        let v = obj.get(key)?;
        match v.as_u64() {
            Some(n) if (least..=MAX_INPUT_LENGTH).contains(&n) => Some(n),
            _ => {
                self.err(
                    format!("{ptr}/{key}"),
                    format!("must be an integer from {least} to {MAX_INPUT_LENGTH}"),
                );
                None
            }
        }
    }

    fn style(&mut self, obj: &Map<String, Value>, ptr: &str) {
        match obj.get("style") {
            None => {}
            Some(Value::String(s)) if s == "primary" || s == "danger" => {}
            Some(_) => self.err(
                format!("{ptr}/style"),
                "must be one of the enumerated values: primary, danger",
            ),
        }
    }

    fn confirm(&mut self, v: &Value, ptr: &str) {
        let Some(obj) = self.object(v, ptr, &["title", "text", "confirm", "deny", "style"]) else {
            return;
        };
        // [confirm] lists title, text, confirm and deny as required; all four are enforced.
        self.text_field(obj, "title", ptr, TextKind::Plain, MAX_CONFIRM_TITLE, true);
        self.text_field(obj, "text", ptr, TextKind::Any, MAX_CONFIRM_TEXT, true);
        self.text_field(
            obj,
            "confirm",
            ptr,
            TextKind::Plain,
            MAX_CONFIRM_BUTTON,
            true,
        );
        self.text_field(obj, "deny", ptr, TextKind::Plain, MAX_CONFIRM_BUTTON, true);
        self.style(obj, ptr);
    }

    /// A select's option values are unique (the strict reading: a submission names the chosen
    /// option by its value) and its `initial_option` is one of its options ([select]
    /// "initial_option: A single option that exactly matches one of the options").
    fn select_values(&mut self, obj: &Map<String, Value>, ptr: &str) {
        let mut options: Vec<(String, &Value)> = Vec::new();
        if let Some(Value::Array(list)) = obj.get("options") {
            for (i, o) in list.iter().enumerate() {
                options.push((format!("{ptr}/options/{i}"), o));
            }
        }
        if let Some(Value::Array(groups)) = obj.get("option_groups") {
            for (g, group) in groups.iter().enumerate() {
                for (i, o) in group["options"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .enumerate()
                {
                    options.push((format!("{ptr}/option_groups/{g}/options/{i}"), o));
                }
            }
        }
        let mut seen = HashSet::new();
        for (at, o) in &options {
            if let Some(v) = o["value"].as_str() {
                if !seen.insert(v.to_string()) {
                    self.err(
                        format!("{at}/value"),
                        format!("duplicate option value `{v}` in this select"),
                    );
                }
            }
        }
        if let Some(initial) = obj.get("initial_option") {
            if !options.iter().any(|(_, o)| *o == initial) {
                self.err(
                    format!("{ptr}/initial_option"),
                    "must exactly match one of the options",
                );
            }
        }
    }

    fn option(&mut self, v: &Value, ptr: &str) {
        let Some(obj) = self.object(v, ptr, &["text", "value", "description"]) else {
            return;
        };
        // [select] options of a select menu take plain_text only.
        self.text_field(obj, "text", ptr, TextKind::Plain, MAX_OPTION_TEXT, true);
        self.string(obj, "value", ptr, MAX_OPTION_VALUE, true);
        self.text_field(
            obj,
            "description",
            ptr,
            TextKind::Plain,
            MAX_OPTION_DESCRIPTION,
            false,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn section(text: &str) -> Value {
        json!({"type": "section", "text": {"type": "mrkdwn", "text": text}})
    }

    fn button(action_id: &str) -> Value {
        json!({"type": "button", "text": {"type": "plain_text", "text": "Go"}, "action_id": action_id, "value": "v"})
    }

    fn confirm() -> Value {
        json!({
            "title": {"type": "plain_text", "text": "Sure?"},
            "text": {"type": "mrkdwn", "text": "*Really*"},
            "confirm": {"type": "plain_text", "text": "Yes"},
            "deny": {"type": "plain_text", "text": "No"},
            "style": "danger"
        })
    }

    fn select(options: usize) -> Value {
        let opts: Vec<Value> = (0..options)
            .map(|i| json!({"text": {"type": "plain_text", "text": format!("o{i}")}, "value": format!("v{i}")}))
            .collect();
        json!({"type": "static_select", "action_id": "pick", "placeholder": {"type": "plain_text", "text": "Pick"}, "options": opts})
    }

    /// Blocks Slack accepts (each shape the bot or a modal uses, at its limits).
    #[test]
    fn messages_slack_accepts_pass() {
        let cases: Vec<(&str, Option<&str>, Value)> = vec![
            ("text only", Some("hello"), Value::Null),
            ("section", Some("t"), json!([section("*hi*")])),
            ("section at 3000", None, json!([section(&"x".repeat(3000))])),
            (
                "10 fields (the total stays under msg_blocks_too_long)",
                None,
                json!([{"type": "section", "fields": (0..10).map(|_| json!({"type": "mrkdwn", "text": "f".repeat(1000)})).collect::<Vec<_>>()}]),
            ),
            (
                "field at 2000",
                None,
                json!([{"type": "section", "fields": [{"type": "plain_text", "text": "f".repeat(2000)}]}]),
            ),
            (
                "header 150",
                None,
                json!([{"type": "header", "text": {"type": "plain_text", "text": "h".repeat(150), "emoji": true}}]),
            ),
            (
                "divider",
                Some("t"),
                json!([{"type": "divider", "block_id": "d1"}]),
            ),
            (
                "context 10",
                None,
                json!([{"type": "context", "elements": (0..10).map(|i| json!({"type": "mrkdwn", "text": format!("c{i}")})).collect::<Vec<_>>()}]),
            ),
            (
                "actions 25 unique",
                None,
                json!([{"type": "actions", "block_id": "a", "elements": (0..25).map(|i| button(&format!("b{i}"))).collect::<Vec<_>>()}]),
            ),
            (
                "button at limits",
                None,
                json!([{"type": "actions", "elements": [{"type": "button", "text": {"type": "plain_text", "text": "b".repeat(75)},
                    "action_id": "a".repeat(255), "value": "v".repeat(2000), "url": format!("https://x.example/{}", "u".repeat(2900)),
                    "style": "primary", "confirm": confirm()}]}]),
            ),
            (
                "select 100",
                None,
                json!([{"type": "actions", "elements": [select(100)]}]),
            ),
            (
                "select with an initial option among its options",
                None,
                json!([{"type": "actions", "elements": [{
                    "type": "static_select", "action_id": "pick",
                    "placeholder": {"type": "plain_text", "text": "Silence…"},
                    "options": [
                        {"text": {"type": "plain_text", "text": "1 hour"}, "value": "1h"},
                        {"text": {"type": "plain_text", "text": "4 hours"}, "value": "4h"}
                    ],
                    "initial_option": {"text": {"type": "plain_text", "text": "4 hours"}, "value": "4h"}
                }]}]),
            ),
            (
                "50 blocks",
                None,
                Value::Array((0..50).map(|i| section(&format!("s{i}"))).collect()),
            ),
            (
                "accented letters count one each",
                None,
                json!([section(&"é".repeat(3000))]),
            ),
        ];
        for (name, text, blocks) in cases {
            let blocks = (!blocks.is_null()).then_some(&blocks);
            assert_eq!(validate_message(text, blocks), Ok(()), "{name}");
        }
    }

    /// Each refusal, with the pointer Slack would name.
    #[test]
    fn each_documented_limit_is_refused_at_its_field() {
        let long_select = {
            let mut s = select(1);
            s["options"][0]["text"]["text"] = json!("o".repeat(76));
            s["options"][0]["value"] = json!("v".repeat(151));
            s
        };
        let mut bad_confirm = confirm();
        bad_confirm["title"]["text"] = json!("t".repeat(101));
        bad_confirm["text"]["text"] = json!("t".repeat(301));
        bad_confirm["confirm"]["text"] = json!("c".repeat(31));
        bad_confirm["deny"]["text"] = json!("d".repeat(31));
        let mut no_deny = confirm();
        no_deny.as_object_mut().map(|o| o.remove("deny"));
        let cases: Vec<(&str, Value, &str)> = vec![
            (
                "duplicate action_id in a block",
                json!([{"type": "actions", "elements": [button("x"), button("y"), button("x")]}]),
                "/blocks/0/elements/2/action_id",
            ),
            (
                "duplicate action_id across blocks",
                json!([{"type": "actions", "elements": [button("x")]}, {"type": "actions", "elements": [button("x")]}]),
                "/blocks/1/elements/0/action_id",
            ),
            (
                "duplicate block_id",
                json!([{"type": "divider", "block_id": "b"}, {"type": "divider", "block_id": "b"}]),
                "/blocks/1/block_id",
            ),
            (
                "block_id 256",
                json!([{"type": "divider", "block_id": "b".repeat(256)}]),
                "/blocks/0/block_id",
            ),
            (
                "action_id 256",
                json!([{"type": "actions", "elements": [button(&"a".repeat(256))]}]),
                "/blocks/0/elements/0/action_id",
            ),
            (
                "51 blocks",
                Value::Array((0..51).map(|_| json!({"type": "divider"})).collect()),
                "/blocks",
            ),
            (
                "section 3001",
                json!([section(&"x".repeat(3001))]),
                "/blocks/0/text/text",
            ),
            (
                "section counts UTF-16 units",
                json!([section(&"😀".repeat(1501))]),
                "/blocks/0/text/text",
            ),
            ("empty text", json!([section("")]), "/blocks/0/text/text"),
            (
                "blank text",
                json!([section(" \n ")]),
                "/blocks/0/text/text",
            ),
            (
                "section without text or fields",
                json!([{"type": "section"}]),
                "/blocks/0/text",
            ),
            (
                "11 fields",
                json!([{"type": "section", "fields": (0..11).map(|_| json!({"type": "mrkdwn", "text": "f"})).collect::<Vec<_>>()}]),
                "/blocks/0/fields",
            ),
            (
                "field 2001",
                json!([{"type": "section", "fields": [{"type": "mrkdwn", "text": "f".repeat(2001)}]}]),
                "/blocks/0/fields/0/text",
            ),
            (
                "header mrkdwn",
                json!([{"type": "header", "text": {"type": "mrkdwn", "text": "h"}}]),
                "/blocks/0/text/type",
            ),
            (
                "header 151",
                json!([{"type": "header", "text": {"type": "plain_text", "text": "h".repeat(151)}}]),
                "/blocks/0/text/text",
            ),
            (
                "context empty",
                json!([{"type": "context", "elements": []}]),
                "/blocks/0/elements",
            ),
            (
                "context 11",
                json!([{"type": "context", "elements": (0..11).map(|_| json!({"type": "mrkdwn", "text": "c"})).collect::<Vec<_>>()}]),
                "/blocks/0/elements",
            ),
            (
                "actions empty",
                json!([{"type": "actions", "elements": []}]),
                "/blocks/0/elements",
            ),
            (
                "actions 26",
                json!([{"type": "actions", "elements": (0..26).map(|i| button(&format!("b{i}"))).collect::<Vec<_>>()}]),
                "/blocks/0/elements",
            ),
            (
                "button text 76",
                json!([{"type": "actions", "elements": [{"type": "button", "text": {"type": "plain_text", "text": "b".repeat(76)}}]}]),
                "/blocks/0/elements/0/text/text",
            ),
            (
                "button text mrkdwn",
                json!([{"type": "actions", "elements": [{"type": "button", "text": {"type": "mrkdwn", "text": "b"}}]}]),
                "/blocks/0/elements/0/text/type",
            ),
            (
                "button without text",
                json!([{"type": "actions", "elements": [{"type": "button", "action_id": "a"}]}]),
                "/blocks/0/elements/0/text",
            ),
            (
                "button value 2001",
                json!([{"type": "actions", "elements": [{"type": "button", "text": {"type": "plain_text", "text": "b"}, "value": "v".repeat(2001)}]}]),
                "/blocks/0/elements/0/value",
            ),
            (
                "button url 3001",
                json!([{"type": "actions", "elements": [{"type": "button", "text": {"type": "plain_text", "text": "b"}, "url": format!("https://x/{}", "u".repeat(2992))}]}]),
                "/blocks/0/elements/0/url",
            ),
            (
                "button style",
                json!([{"type": "actions", "elements": [{"type": "button", "text": {"type": "plain_text", "text": "b"}, "style": "secondary"}]}]),
                "/blocks/0/elements/0/style",
            ),
            (
                "confirm title 101",
                json!([{"type": "actions", "elements": [{"type": "button", "text": {"type": "plain_text", "text": "b"}, "confirm": bad_confirm.clone()}]}]),
                "/blocks/0/elements/0/confirm/title/text",
            ),
            (
                "confirm text 301",
                json!([{"type": "actions", "elements": [{"type": "button", "text": {"type": "plain_text", "text": "b"}, "confirm": bad_confirm.clone()}]}]),
                "/blocks/0/elements/0/confirm/text/text",
            ),
            (
                "confirm confirm 31",
                json!([{"type": "actions", "elements": [{"type": "button", "text": {"type": "plain_text", "text": "b"}, "confirm": bad_confirm.clone()}]}]),
                "/blocks/0/elements/0/confirm/confirm/text",
            ),
            (
                "confirm deny 31",
                json!([{"type": "actions", "elements": [{"type": "button", "text": {"type": "plain_text", "text": "b"}, "confirm": bad_confirm}]}]),
                "/blocks/0/elements/0/confirm/deny/text",
            ),
            (
                "confirm without deny",
                json!([{"type": "actions", "elements": [{"type": "button", "text": {"type": "plain_text", "text": "b"}, "confirm": no_deny}]}]),
                "/blocks/0/elements/0/confirm/deny",
            ),
            (
                "select 101",
                json!([{"type": "actions", "elements": [select(101)]}]),
                "/blocks/0/elements/0/options",
            ),
            (
                "option text 76",
                json!([{"type": "actions", "elements": [long_select.clone()]}]),
                "/blocks/0/elements/0/options/0/text/text",
            ),
            (
                "option value 151",
                json!([{"type": "actions", "elements": [long_select]}]),
                "/blocks/0/elements/0/options/0/value",
            ),
            (
                "initial option not among the options",
                json!([{"type": "actions", "elements": [{
                    "type": "static_select", "action_id": "pick",
                    "placeholder": {"type": "plain_text", "text": "Pick"},
                    "options": [{"text": {"type": "plain_text", "text": "a"}, "value": "a"}],
                    "initial_option": {"text": {"type": "plain_text", "text": "a"}, "value": "b"}
                }]}]),
                "/blocks/0/elements/0/initial_option",
            ),
            (
                "select without options",
                json!([{"type": "actions", "elements": [{
                    "type": "static_select", "action_id": "pick", "options": []
                }]}]),
                "/blocks/0/elements/0/options",
            ),
            (
                "select placeholder 151",
                json!([{"type": "actions", "elements": [{
                    "type": "static_select", "action_id": "pick",
                    "placeholder": {"type": "plain_text", "text": "p".repeat(151)},
                    "options": [{"text": {"type": "plain_text", "text": "a"}, "value": "a"}]
                }]}]),
                "/blocks/0/elements/0/placeholder/text",
            ),
            (
                "two selects with one action_id in a block",
                json!([{"type": "actions", "elements": [select(1), select(1)]}]),
                "/blocks/0/elements/1/action_id",
            ),
            (
                "unknown block type",
                json!([{"type": "carousel"}]),
                "/blocks/0/type",
            ),
            (
                "input in a message",
                json!([{"type": "input", "label": {"type": "plain_text", "text": "l"}, "element": {"type": "plain_text_input"}}]),
                "/blocks/0/type",
            ),
            (
                "unknown element type",
                json!([{"type": "actions", "elements": [{"type": "rocket"}]}]),
                "/blocks/0/elements/0/type",
            ),
            (
                "unknown field",
                json!([{"type": "divider", "colour": "red"}]),
                "/blocks/0/colour",
            ),
            (
                "text object type",
                json!([{"type": "section", "text": {"type": "markdown", "text": "x"}}]),
                "/blocks/0/text/type",
            ),
            (
                "emoji on mrkdwn",
                json!([{"type": "section", "text": {"type": "mrkdwn", "text": "x", "emoji": true}}]),
                "/blocks/0/text/emoji",
            ),
        ];
        for (name, blocks, pointer) in cases {
            match validate_message(Some("fallback"), Some(&blocks)) {
                Err(Refusal::InvalidBlocks(problems)) => {
                    assert!(
                        problems.iter().any(|p| p.pointer == pointer),
                        "{name}: expected a problem at {pointer}, got {problems:?}"
                    );
                    let messages = Refusal::InvalidBlocks(problems).messages();
                    assert!(
                        messages.iter().any(|m| m.starts_with("[ERROR] ")
                            && m.ends_with(&format!("[json-pointer:{pointer}]"))),
                        "{name}: {messages:?}"
                    );
                }
                other => panic!("{name}: expected invalid_blocks, got {other:?}"),
            }
        }
    }

    #[test]
    fn message_level_refusals_use_slacks_codes() {
        let long = "x".repeat(MAX_MESSAGE_TEXT + 1);
        assert_eq!(
            validate_message(Some(&long), None).map_err(|r| r.error()),
            Err("msg_too_long")
        );
        assert_eq!(
            validate_message(Some(&"x".repeat(MAX_MESSAGE_TEXT)), None),
            Ok(())
        );
        assert_eq!(
            validate_message(None, None).map_err(|r| r.error()),
            Err("no_text")
        );
        assert_eq!(
            validate_message(Some("t"), Some(&json!({"type": "section"}))).map_err(|r| r.error()),
            Err("invalid_blocks_format")
        );
        let heavy: Vec<Value> = (0..5).map(|_| section(&"x".repeat(2900))).collect();
        assert_eq!(
            validate_message(Some("t"), Some(&Value::Array(heavy))).map_err(|r| r.error()),
            Err("msg_blocks_too_long")
        );
    }

    fn modal(blocks: Value) -> Value {
        json!({
            "type": "modal",
            "callback_id": "linkbot_feedback",
            "title": {"type": "plain_text", "text": "What was it really?"},
            "submit": {"type": "plain_text", "text": "Send"},
            "close": {"type": "plain_text", "text": "Cancel"},
            "private_metadata": "{\"l\":\"c1hk4ek107l5au5mq8hg\"}",
            "blocks": blocks,
        })
    }

    #[test]
    fn modals_slack_accepts_pass_and_the_rest_is_refused_at_its_field() {
        let input = |id: &str| {
            json!({"type": "input", "block_id": id, "label": {"type": "plain_text", "text": "Comment"},
                "element": {"type": "plain_text_input", "action_id": id, "multiline": true, "max_length": 3000}})
        };
        let good = modal(json!([
            {"type": "input", "block_id": "verdict", "label": {"type": "plain_text", "text": "Verdict"}, "element": select(12)},
            input("comment"),
        ]));
        assert_eq!(validate_view(&good), Ok(()));
        let hundred = modal(Value::Array(
            (0..100).map(|i| input(&format!("i{i}"))).collect(),
        ));
        assert_eq!(validate_view(&hundred), Ok(()));

        let mut long_title = good.clone();
        long_title["title"]["text"] = json!("t".repeat(25));
        let mut long_submit = good.clone();
        long_submit["submit"]["text"] = json!("s".repeat(25));
        let mut long_close = good.clone();
        long_close["close"]["text"] = json!("c".repeat(25));
        let mut metadata = good.clone();
        metadata["private_metadata"] = json!("m".repeat(3001));
        let mut callback = good.clone();
        callback["callback_id"] = json!("c".repeat(256));
        let mut no_submit = good.clone();
        no_submit.as_object_mut().map(|o| o.remove("submit"));
        let mut no_title = good.clone();
        no_title.as_object_mut().map(|o| o.remove("title"));
        let mut home = good.clone();
        home["type"] = json!("home");
        let too_many = modal(Value::Array(
            (0..101).map(|i| input(&format!("i{i}"))).collect(),
        ));
        let mut mrkdwn_title = good.clone();
        mrkdwn_title["title"]["type"] = json!("mrkdwn");
        // Input blocks, selects and text inputs at one past each documented limit.
        let mut long_label = good.clone();
        long_label["blocks"][0]["label"]["text"] = json!("l".repeat(2001));
        let mut long_hint = good.clone();
        long_hint["blocks"][1]["hint"] = json!({"type": "plain_text", "text": "h".repeat(2001)});
        let mut no_element = good.clone();
        no_element["blocks"][1]
            .as_object_mut()
            .map(|o| o.remove("element"));
        let mut same_block = good.clone();
        same_block["blocks"][1]["block_id"] = json!("verdict");
        let mut long_max = good.clone();
        long_max["blocks"][1]["element"]["max_length"] = json!(3001);
        let mut long_min = good.clone();
        long_min["blocks"][1]["element"]["min_length"] = json!(3001);
        let mut long_placeholder = good.clone();
        long_placeholder["blocks"][1]["element"]["placeholder"] =
            json!({"type": "plain_text", "text": "p".repeat(151)});
        let mut long_action = good.clone();
        long_action["blocks"][1]["element"]["action_id"] = json!("a".repeat(256));
        let mut many_options = good.clone();
        many_options["blocks"][0]["element"] = select(101);
        let mut long_option = good.clone();
        long_option["blocks"][0]["element"]["options"][3]["text"]["text"] = json!("o".repeat(76));
        let mut long_value = good.clone();
        long_value["blocks"][0]["element"]["options"][3]["value"] = json!("v".repeat(151));
        let mut same_value = good.clone();
        same_value["blocks"][0]["element"]["options"][3]["value"] = json!("v1");
        let mut stray_initial = good.clone();
        stray_initial["blocks"][0]["element"]["initial_option"] =
            json!({"text": {"type": "plain_text", "text": "o99"}, "value": "v99"});
        let mut initial_too_long = good.clone();
        initial_too_long["blocks"][1]["element"]["max_length"] = json!(3);
        initial_too_long["blocks"][1]["element"]["initial_value"] = json!("four");
        let mut long_external = good.clone();
        long_external["external_id"] = json!("e".repeat(256));
        let cases = [
            ("title 25", long_title, "/view/title/text"),
            ("submit 25", long_submit, "/view/submit/text"),
            ("close 25", long_close, "/view/close/text"),
            ("private_metadata 3001", metadata, "/view/private_metadata"),
            ("callback_id 256", callback, "/view/callback_id"),
            ("input without submit", no_submit, "/view/submit"),
            ("no title", no_title, "/view/title"),
            ("not a modal", home, "/view/type"),
            ("101 blocks", too_many, "/view/blocks"),
            ("mrkdwn title", mrkdwn_title, "/view/title/type"),
            ("label 2001", long_label, "/view/blocks/0/label/text"),
            ("hint 2001", long_hint, "/view/blocks/1/hint/text"),
            (
                "input without element",
                no_element,
                "/view/blocks/1/element",
            ),
            ("block_id twice", same_block, "/view/blocks/1/block_id"),
            (
                "max_length 3001",
                long_max,
                "/view/blocks/1/element/max_length",
            ),
            (
                "min_length 3001",
                long_min,
                "/view/blocks/1/element/min_length",
            ),
            (
                "placeholder 151",
                long_placeholder,
                "/view/blocks/1/element/placeholder/text",
            ),
            (
                "action_id 256",
                long_action,
                "/view/blocks/1/element/action_id",
            ),
            (
                "101 options",
                many_options,
                "/view/blocks/0/element/options",
            ),
            (
                "option text 76",
                long_option,
                "/view/blocks/0/element/options/3/text/text",
            ),
            (
                "option value 151",
                long_value,
                "/view/blocks/0/element/options/3/value",
            ),
            (
                "option value twice",
                same_value,
                "/view/blocks/0/element/options/3/value",
            ),
            (
                "initial_option not offered",
                stray_initial,
                "/view/blocks/0/element/initial_option",
            ),
            (
                "initial_value past max_length",
                initial_too_long,
                "/view/blocks/1/element/initial_value",
            ),
            ("external_id 256", long_external, "/view/external_id"),
        ];
        for (name, view, pointer) in cases {
            match validate_view(&view) {
                Err(Refusal::InvalidArguments(problems)) => assert!(
                    problems.iter().any(|p| p.pointer == pointer),
                    "{name}: expected {pointer}, got {problems:?}"
                ),
                other => panic!("{name}: expected invalid_arguments, got {other:?}"),
            }
        }
    }
}
