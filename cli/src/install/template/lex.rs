//! Splits a template into text and actions, applies `{{-`/`-}}` trimming, drops comments, and
//! tokenizes each action.

use super::{Item, TemplateError};

#[derive(Clone, Debug, PartialEq)]
pub(super) enum Tok {
    Ident(String),
    Field(Vec<String>),
    Var(String, Vec<String>),
    Str(String),
    Num(serde_json::Number),
    Pipe,
    LParen,
    RParen,
    Comma,
    Declare,
    Assign,
}

pub(super) fn lex(file: &str, text: &str) -> Result<Vec<Item>, TemplateError> {
    let error = |line: usize, message: String| TemplateError {
        file: file.to_string(),
        line,
        message,
    };
    let mut items = Vec::new();
    let mut rest = text;
    let mut line = 1;
    let mut trim_next = false;
    while !rest.is_empty() {
        let Some(open) = rest.find("{{") else {
            push_text(&mut items, rest, trim_next, false);
            break;
        };
        let after = &rest[open + 2..];
        let trim_before = after.starts_with("- ")
            || after.starts_with("-\n")
            || after.starts_with("-\t")
            || after.starts_with("-\r");
        push_text(&mut items, &rest[..open], trim_next, trim_before);
        line += rest[..open].matches('\n').count();
        let body_start = if trim_before { 1 } else { 0 };
        let close = find_close(after).ok_or_else(|| error(line, "unclosed action `{{`".into()))?;
        let mut body = &after[body_start..close];
        trim_next = false;
        if body.ends_with(" -") || body.ends_with("\n-") || body.ends_with("\t-") {
            body = &body[..body.len() - 1];
            trim_next = true;
        }
        let inner = body.trim();
        if inner.starts_with("/*") {
            if !inner.ends_with("*/") {
                return Err(error(
                    line,
                    "a comment must end with `*/` right before `}}`".into(),
                ));
            }
        } else {
            let toks = tokens(inner).map_err(|m| error(line, m))?;
            if toks.is_empty() {
                return Err(error(line, "empty action".into()));
            }
            items.push(Item::Action { line, toks });
        }
        line += after[..close].matches('\n').count();
        rest = &after[close + 2..];
    }
    Ok(items)
}

fn push_text(items: &mut Vec<Item>, text: &str, trim_start: bool, trim_end: bool) {
    let mut text = text;
    if trim_start {
        text = text.trim_start();
    }
    if trim_end {
        text = text.trim_end();
    }
    if !text.is_empty() {
        items.push(Item::Text(text.to_string()));
    }
}

/// The index of the `}}` that closes an action, skipping quoted strings.
fn find_close(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut quote = None;
    while i < bytes.len() {
        let b = bytes[i];
        match quote {
            Some(q) => {
                if b == b'\\' && q == b'"' {
                    i += 1;
                } else if b == q {
                    quote = None;
                }
            }
            None if b == b'"' || b == b'`' => quote = Some(b),
            None if b == b'}' && bytes.get(i + 1) == Some(&b'}') => return Some(i),
            None => {}
        }
        i += 1;
    }
    None
}

fn tokens(s: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = s.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    let word = |i: &mut usize| {
        let start = *i;
        while *i < chars.len() && (chars[*i].is_alphanumeric() || chars[*i] == '_') {
            *i += 1;
        }
        chars[start..*i].iter().collect::<String>()
    };
    let path = |i: &mut usize| -> Result<Vec<String>, String> {
        let mut path = Vec::new();
        while *i < chars.len() && chars[*i] == '.' {
            *i += 1;
            let field = word(i);
            if field.is_empty() {
                if path.is_empty() && (*i >= chars.len() || !chars[*i].is_alphanumeric()) {
                    break; // a lone `.`
                }
                return Err("a field name must follow `.`".to_string());
            }
            path.push(field);
        }
        Ok(path)
    };
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' | '\n' | '\r' => i += 1,
            '|' => {
                toks.push(Tok::Pipe);
                i += 1;
            }
            '(' => {
                toks.push(Tok::LParen);
                i += 1;
            }
            ')' => {
                toks.push(Tok::RParen);
                i += 1;
                if chars.get(i) == Some(&'.') {
                    return Err("field access on a parenthesized value is not supported".into());
                }
            }
            ',' => {
                toks.push(Tok::Comma);
                i += 1;
            }
            ':' if chars.get(i + 1) == Some(&'=') => {
                toks.push(Tok::Declare);
                i += 2;
            }
            '=' => {
                toks.push(Tok::Assign);
                i += 1;
            }
            '.' => toks.push(Tok::Field(path(&mut i)?)),
            '$' => {
                i += 1;
                let name = format!("${}", word(&mut i));
                toks.push(Tok::Var(name, path(&mut i)?));
            }
            '"' => {
                let start = i;
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    if chars[i] == '\\' {
                        i += 1;
                    }
                    i += 1;
                }
                if i >= chars.len() {
                    return Err("unterminated string".into());
                }
                i += 1;
                let quoted: String = chars[start..i].iter().collect();
                let s: String = serde_json::from_str(&quoted)
                    .map_err(|e| format!("string {quoted} does not parse: {e}"))?;
                toks.push(Tok::Str(s));
            }
            '`' => {
                let start = i + 1;
                i = start;
                while i < chars.len() && chars[i] != '`' {
                    i += 1;
                }
                if i >= chars.len() {
                    return Err("unterminated raw string".into());
                }
                toks.push(Tok::Str(chars[start..i].iter().collect()));
                i += 1;
            }
            c if c.is_ascii_digit()
                || (c == '-' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) =>
            {
                let start = i;
                i += 1;
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                    i += 1;
                }
                let text: String = chars[start..i].iter().collect();
                let number = if let Ok(n) = text.parse::<i64>() {
                    serde_json::Number::from(n)
                } else {
                    text.parse::<f64>()
                        .ok()
                        .and_then(serde_json::Number::from_f64)
                        .ok_or_else(|| format!("number {text:?} is not supported"))?
                };
                toks.push(Tok::Num(number));
            }
            c if c.is_alphabetic() || c == '_' => toks.push(Tok::Ident(word(&mut i))),
            other => return Err(format!("unexpected character {other:?}")),
        }
    }
    Ok(toks)
}
