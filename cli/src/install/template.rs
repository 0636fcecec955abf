//! A renderer for exactly the subset of Go templates (and Sprig functions) that the
//! `oxlink-control-plane` chart uses, so that `oxlink install` renders the chart itself.
//!
//! Supported: text with `{{- … -}}` trimming and `{{/* comments */}}`; `.Field.Paths`, `$`,
//! `$var.paths`, string/number/bool/nil literals, parentheses and pipelines; `$x := …`;
//! `if / else if / else`, `with / else`, `range` (with `$k, $v :=`), `define`, `template`; and
//! the functions in [`FUNCTIONS`]. Anything else is refused with the file, the line and the
//! construct, at parse time where Go would refuse it too.

mod exec;
mod lex;
mod yaml;

pub(crate) use yaml::to_yaml;

use serde_json::Value;
use std::collections::BTreeMap;

/// The functions the renderer knows, with Go's and Sprig's semantics.
pub(crate) const FUNCTIONS: &[&str] = &[
    "and", "b64enc", "deepCopy", "default", "eq", "include", "indent", "ne", "nindent", "not",
    "or", "quote", "required", "toYaml", "trim", "unset",
];

/// A template that failed to parse or to render: where, and why.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub(crate) struct TemplateError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

/// Parsed template files and the named templates they `define`.
#[derive(Debug, Default)]
pub(crate) struct Templates {
    files: BTreeMap<String, Vec<Node>>,
    defines: BTreeMap<String, (String, Vec<Node>)>,
}

#[derive(Clone, Debug)]
enum Node {
    Text(String),
    Output {
        line: usize,
        pipe: Pipeline,
    },
    If {
        line: usize,
        cond: Pipeline,
        then: Vec<Node>,
        els: Vec<Node>,
    },
    With {
        line: usize,
        pipe: Pipeline,
        then: Vec<Node>,
        els: Vec<Node>,
    },
    Range {
        line: usize,
        pipe: Pipeline,
        then: Vec<Node>,
        els: Vec<Node>,
    },
    Template {
        line: usize,
        name: String,
        arg: Option<Pipeline>,
    },
}

/// `$a, $b := cmd | cmd …`
#[derive(Clone, Debug)]
struct Pipeline {
    decl: Vec<String>,
    cmds: Vec<Vec<Operand>>,
}

#[derive(Clone, Debug)]
enum Operand {
    Func(String),
    /// `.a.b` (empty: `.`)
    Field(Vec<String>),
    /// `$x.a.b` (`$` is the root)
    Var(String, Vec<String>),
    Lit(Value),
    Sub(Pipeline),
}

/// A lexed piece of a template: text, or one action's tokens.
#[derive(Debug)]
enum Item {
    Text(String),
    Action { line: usize, toks: Vec<lex::Tok> },
}

/// How a list of nodes ended.
enum Stop {
    Eof,
    End(usize),
    Else(usize, Vec<lex::Tok>),
    Define(usize, String),
}

// === impl Templates ===

impl Templates {
    /// Parses one file; its `define`s become available to every file.
    pub(crate) fn parse(&mut self, file: &str, text: &str) -> Result<(), TemplateError> {
        let items = lex::lex(file, text)?;
        let mut parser = Parser {
            file,
            items: items.into_iter(),
        };
        let mut body = Vec::new();
        loop {
            let (mut nodes, end) = parser.list()?;
            body.append(&mut nodes);
            match end {
                Stop::Eof => break,
                Stop::Define(line, name) => {
                    let (nodes, end) = parser.list()?;
                    parser.expect_end(line, "define", &end)?;
                    self.defines.insert(name, (file.to_string(), nodes));
                }
                Stop::End(line) => return Err(parser.error(line, "unexpected {{end}}")),
                Stop::Else(line, _) => return Err(parser.error(line, "unexpected {{else}}")),
            }
        }
        self.files.insert(file.to_string(), body);
        Ok(())
    }

    /// Renders a parsed file with `data` as `.` and `$`.
    pub(crate) fn render(&self, file: &str, data: &Value) -> Result<String, TemplateError> {
        let nodes = self.files.get(file).ok_or_else(|| TemplateError {
            file: file.to_string(),
            line: 0,
            message: "no such template file".into(),
        })?;
        exec::Exec::new(self, file).run(nodes, data)
    }
}

struct Parser<'a> {
    file: &'a str,
    items: std::vec::IntoIter<Item>,
}

// === impl Parser ===

impl Parser<'_> {
    fn error(&self, line: usize, message: impl Into<String>) -> TemplateError {
        TemplateError {
            file: self.file.to_string(),
            line,
            message: message.into(),
        }
    }

    fn expect_end(&self, line: usize, what: &str, end: &Stop) -> Result<(), TemplateError> {
        match end {
            Stop::End(_) => Ok(()),
            _ => Err(self.error(line, format!("{{{{{what}}}}} has no matching {{{{end}}}}"))),
        }
    }

    /// Nodes up to the next `end`, `else` or `define` (or the end of the file).
    fn list(&mut self) -> Result<(Vec<Node>, Stop), TemplateError> {
        let mut nodes = Vec::new();
        while let Some(item) = self.items.next() {
            let (line, toks) = match item {
                Item::Text(text) => {
                    nodes.push(Node::Text(text));
                    continue;
                }
                Item::Action { line, toks } => (line, toks),
            };
            let keyword = match toks.first() {
                Some(lex::Tok::Ident(word)) => word.as_str(),
                _ => "",
            };
            let rest = toks.get(1..).unwrap_or_default().to_vec();
            match keyword {
                "end" => return Ok((nodes, Stop::End(line))),
                "else" => return Ok((nodes, Stop::Else(line, rest))),
                "define" => {
                    let name = self.template_name(line, &rest, "define")?;
                    if rest.len() != 1 {
                        return Err(self.error(line, "{{define}} takes only a name"));
                    }
                    return Ok((nodes, Stop::Define(line, name)));
                }
                "if" => nodes.push(self.if_(line, rest)?),
                "with" | "range" => {
                    let pipe = self.pipeline(line, rest)?;
                    let (then, end) = self.list()?;
                    let els = match end {
                        Stop::Else(else_line, rest) if rest.is_empty() => {
                            let (els, end) = self.list()?;
                            self.expect_end(else_line, "else", &end)?;
                            els
                        }
                        Stop::Else(else_line, _) => {
                            return Err(self.error(
                                else_line,
                                format!("`else if`/`else with` inside {{{{{keyword}}}}} is not supported"),
                            ));
                        }
                        end => {
                            self.expect_end(line, keyword, &end)?;
                            Vec::new()
                        }
                    };
                    if keyword == "with" {
                        nodes.push(Node::With {
                            line,
                            pipe,
                            then,
                            els,
                        });
                    } else {
                        if pipe.decl.len() > 2 {
                            return Err(self.error(line, "range declares at most two variables"));
                        }
                        nodes.push(Node::Range {
                            line,
                            pipe,
                            then,
                            els,
                        });
                    }
                }
                "template" => {
                    let name = self.template_name(line, &rest, "template")?;
                    let arg = if rest.len() > 1 {
                        Some(self.pipeline(line, rest[1..].to_vec())?)
                    } else {
                        None
                    };
                    nodes.push(Node::Template { line, name, arg });
                }
                "block" | "break" | "continue" => {
                    return Err(self.error(
                        line,
                        format!("{{{{{keyword}}}}} is not supported by oxlink's template renderer"),
                    ));
                }
                _ => {
                    let pipe = self.pipeline(line, toks)?;
                    nodes.push(Node::Output { line, pipe });
                }
            }
        }
        Ok((nodes, Stop::Eof))
    }

    /// `if cond` … up to its `end`, with `else if` chains sharing that `end`.
    fn if_(&mut self, line: usize, toks: Vec<lex::Tok>) -> Result<Node, TemplateError> {
        let cond = self.pipeline(line, toks)?;
        let (then, end) = self.list()?;
        let els = match end {
            Stop::Else(_, rest) if rest.is_empty() => {
                let (els, end) = self.list()?;
                self.expect_end(line, "if", &end)?;
                els
            }
            Stop::Else(else_line, rest) => match rest.first() {
                Some(lex::Tok::Ident(word)) if word == "if" => {
                    vec![self.if_(else_line, rest[1..].to_vec())?]
                }
                _ => {
                    return Err(self.error(
                        else_line,
                        "only `else` and `else if` are supported after {{if}}",
                    ));
                }
            },
            end => {
                self.expect_end(line, "if", &end)?;
                Vec::new()
            }
        };
        Ok(Node::If {
            line,
            cond,
            then,
            els,
        })
    }

    fn template_name(
        &self,
        line: usize,
        toks: &[lex::Tok],
        what: &str,
    ) -> Result<String, TemplateError> {
        match toks.first() {
            Some(lex::Tok::Str(name)) => Ok(name.clone()),
            _ => Err(self.error(line, format!("{{{{{what}}}}} needs a quoted template name"))),
        }
    }

    fn pipeline(&self, line: usize, toks: Vec<lex::Tok>) -> Result<Pipeline, TemplateError> {
        use lex::Tok;
        let mut toks = toks.into_iter().peekable();
        let mut decl = Vec::new();
        // `$a := …` or `$a, $b := …`
        let declares = {
            let mut probe = toks.clone();
            let mut names = Vec::new();
            loop {
                match probe.next() {
                    Some(Tok::Var(name, path)) if path.is_empty() && name != "$" => {
                        names.push(name);
                    }
                    _ => break None,
                }
                match probe.next() {
                    Some(Tok::Comma) => continue,
                    Some(Tok::Declare) => break Some((names, probe)),
                    Some(Tok::Assign) => {
                        return Err(self.error(
                            line,
                            "assigning an existing variable (`=`) is not supported; declare with `:=`",
                        ));
                    }
                    _ => break None,
                }
            }
        };
        if let Some((names, rest)) = declares {
            decl = names;
            toks = rest;
        }
        let mut cmds = Vec::new();
        let mut cmd = Vec::new();
        while let Some(tok) = toks.next() {
            let operand = match tok {
                Tok::Pipe => {
                    if cmd.is_empty() {
                        return Err(self.error(line, "empty command in pipeline"));
                    }
                    cmds.push(std::mem::take(&mut cmd));
                    continue;
                }
                Tok::LParen => {
                    let mut depth = 1;
                    let mut inner = Vec::new();
                    for tok in toks.by_ref() {
                        match tok {
                            Tok::LParen => depth += 1,
                            Tok::RParen => {
                                depth -= 1;
                                if depth == 0 {
                                    break;
                                }
                            }
                            _ => {}
                        }
                        inner.push(tok);
                    }
                    if depth != 0 {
                        return Err(self.error(line, "unclosed `(`"));
                    }
                    Operand::Sub(self.pipeline(line, inner)?)
                }
                Tok::RParen => return Err(self.error(line, "unexpected `)`")),
                Tok::Comma | Tok::Declare | Tok::Assign => {
                    return Err(self.error(line, "unexpected `,`, `:=` or `=`"));
                }
                Tok::Ident(word) => match word.as_str() {
                    "true" => Operand::Lit(Value::Bool(true)),
                    "false" => Operand::Lit(Value::Bool(false)),
                    "nil" => Operand::Lit(Value::Null),
                    name if FUNCTIONS.contains(&name) => Operand::Func(word),
                    _ => {
                        return Err(self.error(
                            line,
                            format!(
                                "function {word:?} is not supported by oxlink's template renderer \
                                 (it knows {})",
                                FUNCTIONS.join(", ")
                            ),
                        ));
                    }
                },
                Tok::Field(path) => Operand::Field(path),
                Tok::Var(name, path) => Operand::Var(name, path),
                Tok::Str(s) => Operand::Lit(Value::String(s)),
                Tok::Num(n) => Operand::Lit(Value::Number(n)),
            };
            cmd.push(operand);
        }
        if cmd.is_empty() {
            return Err(self.error(line, "missing value in action"));
        }
        cmds.push(cmd);
        Ok(Pipeline { decl, cmds })
    }
}

#[cfg(test)]
mod tests;
