//! Executes parsed templates over a JSON-like value tree, with Go's and Sprig's semantics for
//! the supported constructs.

use super::{
    Node, Operand, Pipeline, TemplateError, Templates,
    yaml::{self, go_number, sorted},
};
use oxlink_crds::names::encoding::base64;
use serde_json::Value;

/// How deep `include`/`template` may nest before recursion is assumed.
const MAX_DEPTH: usize = 64;

pub(super) struct Exec<'a> {
    templates: &'a Templates,
    file: String,
    vars: Vec<(String, Value)>,
    depth: usize,
}

// === impl Exec ===

impl<'a> Exec<'a> {
    pub(super) fn new(templates: &'a Templates, file: &str) -> Self {
        Self {
            templates,
            file: file.to_string(),
            vars: Vec::new(),
            depth: 0,
        }
    }

    pub(super) fn run(mut self, nodes: &[Node], data: &Value) -> Result<String, TemplateError> {
        self.vars.push(("$".into(), data.clone()));
        let mut out = String::new();
        self.walk(nodes, data, &mut out)?;
        Ok(out)
    }

    fn error(&self, line: usize, message: impl Into<String>) -> TemplateError {
        TemplateError {
            file: self.file.clone(),
            line,
            message: message.into(),
        }
    }

    fn walk(&mut self, nodes: &[Node], dot: &Value, out: &mut String) -> Result<(), TemplateError> {
        for node in nodes {
            match node {
                Node::Text(text) => out.push_str(text),
                Node::Output { line, pipe } => {
                    let value = self.pipeline(*line, pipe, dot)?;
                    if pipe.decl.is_empty() {
                        out.push_str(&self.print(*line, &value)?);
                    }
                }
                Node::If {
                    line,
                    cond,
                    then,
                    els,
                } => {
                    let value = self.pipeline(*line, cond, dot)?;
                    let branch = if truthy(&value) { then } else { els };
                    self.scoped(branch, dot, out)?;
                }
                Node::With {
                    line,
                    pipe,
                    then,
                    els,
                } => {
                    let value = self.pipeline(*line, pipe, dot)?;
                    if truthy(&value) {
                        self.scoped(then, &value, out)?;
                    } else {
                        self.scoped(els, dot, out)?;
                    }
                }
                Node::Range {
                    line,
                    pipe,
                    then,
                    els,
                } => self.range(*line, pipe, then, els, dot, out)?,
                Node::Template { line, name, arg } => {
                    let arg = match arg {
                        Some(pipe) => self.pipeline(*line, pipe, dot)?,
                        None => Value::Null,
                    };
                    out.push_str(&self.call_template(*line, name, &arg)?);
                }
            }
        }
        Ok(())
    }

    /// Runs `nodes`, dropping the variables they declare afterwards.
    fn scoped(
        &mut self,
        nodes: &[Node],
        dot: &Value,
        out: &mut String,
    ) -> Result<(), TemplateError> {
        let mark = self.vars.len();
        let result = self.walk(nodes, dot, out);
        self.vars.truncate(mark);
        result
    }

    fn range(
        &mut self,
        line: usize,
        pipe: &Pipeline,
        then: &[Node],
        els: &[Node],
        dot: &Value,
        out: &mut String,
    ) -> Result<(), TemplateError> {
        let undeclared = Pipeline {
            decl: Vec::new(),
            cmds: pipe.cmds.clone(),
        };
        let value = self.pipeline(line, &undeclared, dot)?;
        let entries: Vec<(Value, Value)> = match &value {
            Value::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, v)| (Value::from(i), v.clone()))
                .collect(),
            Value::Object(map) => sorted(map)
                .into_iter()
                .map(|(k, v)| (Value::String(k.clone()), v.clone()))
                .collect(),
            Value::Null => Vec::new(),
            other => {
                return Err(self.error(line, format!("range can't iterate over {}", kind(other))));
            }
        };
        if entries.is_empty() {
            return self.scoped(els, dot, out);
        }
        for (key, item) in entries {
            let mark = self.vars.len();
            match pipe.decl.as_slice() {
                [] => {}
                [v] => self.vars.push((v.clone(), item.clone())),
                [k, v, ..] => {
                    self.vars.push((k.clone(), key));
                    self.vars.push((v.clone(), item.clone()));
                }
            }
            let result = self.walk(then, &item, out);
            self.vars.truncate(mark);
            result?;
        }
        Ok(())
    }

    fn call_template(
        &mut self,
        line: usize,
        name: &str,
        arg: &Value,
    ) -> Result<String, TemplateError> {
        let (file, nodes) = self
            .templates
            .defines
            .get(name)
            .ok_or_else(|| self.error(line, format!("no template {name:?} is defined")))?;
        if self.depth >= MAX_DEPTH {
            return Err(self.error(
                line,
                format!("template {name:?} nests deeper than {MAX_DEPTH}"),
            ));
        }
        let mut inner = Exec {
            templates: self.templates,
            file: file.clone(),
            vars: vec![("$".into(), arg.clone())],
            depth: self.depth + 1,
        };
        let mut out = String::new();
        inner.walk(nodes, arg, &mut out)?;
        Ok(out)
    }

    fn pipeline(
        &mut self,
        line: usize,
        pipe: &Pipeline,
        dot: &Value,
    ) -> Result<Value, TemplateError> {
        let mut piped = None;
        for cmd in &pipe.cmds {
            piped = Some(self.command(line, cmd, dot, piped)?);
        }
        let value = piped.unwrap_or(Value::Null);
        for name in &pipe.decl {
            self.vars.push((name.clone(), value.clone()));
        }
        Ok(value)
    }

    fn command(
        &mut self,
        line: usize,
        cmd: &[Operand],
        dot: &Value,
        piped: Option<Value>,
    ) -> Result<Value, TemplateError> {
        let Some(Operand::Func(name)) = cmd.first() else {
            if cmd.len() > 1 {
                return Err(self.error(line, "only a function can take arguments"));
            }
            if piped.is_some() {
                return Err(self.error(line, "only a function can receive a piped value"));
            }
            return self.operand(line, &cmd[0], dot);
        };
        let args = &cmd[1..];
        match name.as_str() {
            // Lazy, like Go's: stop at the first operand that decides.
            "and" | "or" => {
                let want = name == "or";
                let mut last = Value::Null;
                let count = args.len() + usize::from(piped.is_some());
                if count < 1 {
                    return Err(self.error(line, format!("{name} needs at least one argument")));
                }
                for arg in args {
                    last = self.operand(line, arg, dot)?;
                    if truthy(&last) == want {
                        return Ok(last);
                    }
                }
                Ok(piped.unwrap_or(last))
            }
            "unset" => {
                let (var, path) = match args.first() {
                    Some(Operand::Var(var, path)) => (var, path),
                    _ => {
                        return Err(self.error(
                            line,
                            "unset takes a variable path (`unset $dict.path \"key\"`)",
                        ));
                    }
                };
                let key = match args
                    .get(1)
                    .map(|a| self.operand(line, a, dot))
                    .transpose()?
                {
                    Some(Value::String(key)) if args.len() == 2 && piped.is_none() => key,
                    _ => return Err(self.error(line, "unset takes a dict and one key")),
                };
                let message = format!("unset: {var}.{} is not a dict", path.join("."));
                let slot = self
                    .vars
                    .iter_mut()
                    .rev()
                    .find(|(name, _)| name == var)
                    .map(|(_, value)| value);
                let mut target = slot.ok_or_else(|| TemplateError {
                    file: self.file.clone(),
                    line,
                    message: format!("undefined variable {var}"),
                })?;
                for field in path {
                    target = match target {
                        Value::Object(map) => map.entry(field.clone()).or_insert(Value::Null),
                        _ => break,
                    };
                }
                match target {
                    Value::Object(map) => {
                        map.remove(&key);
                        Ok(Value::Object(map.clone()))
                    }
                    _ => Err(self.error(line, message)),
                }
            }
            _ => {
                let mut values = args
                    .iter()
                    .map(|arg| self.operand(line, arg, dot))
                    .collect::<Result<Vec<_>, _>>()?;
                values.extend(piped);
                self.call(line, name, values)
            }
        }
    }

    fn call(&mut self, line: usize, name: &str, args: Vec<Value>) -> Result<Value, TemplateError> {
        let arity = |n: usize| -> Result<(), TemplateError> {
            if args.len() == n {
                Ok(())
            } else {
                Err(self.error(
                    line,
                    format!("{name} takes {n} argument(s), got {}", args.len()),
                ))
            }
        };
        let value = match name {
            "not" => {
                arity(1)?;
                Value::Bool(!truthy(&args[0]))
            }
            "eq" => {
                if args.len() < 2 {
                    return Err(self.error(line, "eq takes at least two arguments"));
                }
                let mut equal = false;
                for other in &args[1..] {
                    equal |= self.equal(line, &args[0], other)?;
                }
                Value::Bool(equal)
            }
            "ne" => {
                arity(2)?;
                Value::Bool(!self.equal(line, &args[0], &args[1])?)
            }
            "default" => match args.len() {
                1 => args[0].clone(),
                2 if truthy(&args[1]) => args[1].clone(),
                2 => args[0].clone(),
                n => return Err(self.error(line, format!("default takes 2 arguments, got {n}"))),
            },
            "required" => {
                arity(2)?;
                match &args[1] {
                    Value::Null => return Err(self.error(line, self.print(line, &args[0])?)),
                    Value::String(s) if s.is_empty() => {
                        return Err(self.error(line, self.print(line, &args[0])?));
                    }
                    value => value.clone(),
                }
            }
            "quote" => {
                let mut quoted = Vec::new();
                for arg in args.iter().filter(|a| !a.is_null()) {
                    let text = self.print(line, arg)?;
                    quoted.push(serde_json::to_string(&text).unwrap_or_default());
                }
                Value::String(quoted.join(" "))
            }
            "toYaml" => {
                arity(1)?;
                Value::String(yaml::to_yaml(&args[0]))
            }
            "indent" | "nindent" => {
                arity(2)?;
                let width = match &args[0] {
                    Value::Number(n)
                        if n.as_u64().is_some()
                            || n.as_f64().is_some_and(|f| f >= 0.0 && f.fract() == 0.0) =>
                    {
                        n.as_f64().unwrap_or_default() as usize
                    }
                    other => {
                        return Err(self.error(
                            line,
                            format!("{name}'s width must be a number, not {}", kind(other)),
                        ));
                    }
                };
                let pad = " ".repeat(width);
                let text = self.print(line, &args[1])?;
                let indented = format!("{pad}{}", text.replace('\n', &format!("\n{pad}")));
                Value::String(if name == "nindent" {
                    format!("\n{indented}")
                } else {
                    indented
                })
            }
            "trim" => {
                arity(1)?;
                Value::String(self.print(line, &args[0])?.trim().to_string())
            }
            "b64enc" => {
                arity(1)?;
                Value::String(base64(self.print(line, &args[0])?.as_bytes()))
            }
            "deepCopy" => {
                arity(1)?;
                args[0].clone()
            }
            "include" => {
                arity(2)?;
                let Value::String(template) = &args[0] else {
                    return Err(self.error(line, "include takes a template name first"));
                };
                Value::String(self.call_template(line, template, &args[1])?)
            }
            other => return Err(self.error(line, format!("function {other:?} is not supported"))),
        };
        Ok(value)
    }

    /// Go's `eq` on basic kinds: integers and floats do not compare with each other.
    fn equal(&self, line: usize, a: &Value, b: &Value) -> Result<bool, TemplateError> {
        match (a, b) {
            (Value::Number(x), Value::Number(y)) => {
                if x.is_f64() != y.is_f64() {
                    return Err(
                        self.error(line, "incompatible types for comparison (int and float)")
                    );
                }
                Ok(x.as_f64() == y.as_f64())
            }
            (Value::String(x), Value::String(y)) => Ok(x == y),
            (Value::Bool(x), Value::Bool(y)) => Ok(x == y),
            (Value::Null, Value::Null) => Ok(true),
            (Value::Array(_) | Value::Object(_), _) | (_, Value::Array(_) | Value::Object(_)) => {
                Err(self.error(line, "non-comparable type (list or dict) in eq/ne"))
            }
            (Value::Null, _) | (_, Value::Null) => Ok(false),
            (x, y) => Err(self.error(
                line,
                format!(
                    "incompatible types for comparison ({} and {})",
                    kind(x),
                    kind(y)
                ),
            )),
        }
    }

    fn operand(
        &mut self,
        line: usize,
        operand: &Operand,
        dot: &Value,
    ) -> Result<Value, TemplateError> {
        match operand {
            Operand::Lit(value) => Ok(value.clone()),
            Operand::Field(path) => self.field(line, dot, ".", path),
            Operand::Var(name, path) => {
                let value = self
                    .vars
                    .iter()
                    .rev()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.clone())
                    .ok_or_else(|| self.error(line, format!("undefined variable {name}")))?;
                self.field(line, &value, name, path)
            }
            Operand::Sub(pipe) => self.pipeline(line, pipe, dot),
            Operand::Func(name) => self.call(line, name, Vec::new()),
        }
    }

    fn field(
        &self,
        line: usize,
        base: &Value,
        start: &str,
        path: &[String],
    ) -> Result<Value, TemplateError> {
        let mut value = base;
        for (i, field) in path.iter().enumerate() {
            let so_far = || {
                let walked = path[..i].join(".");
                match (start, walked.is_empty()) {
                    (".", _) => format!(".{walked}"),
                    (var, true) => var.to_string(),
                    (var, false) => format!("{var}.{walked}"),
                }
            };
            value = match value {
                Value::Object(map) => match map.get(field) {
                    Some(v) => v,
                    None => &Value::Null,
                },
                Value::Null => {
                    return Err(self.error(
                        line,
                        format!(
                            "nil pointer evaluating {}.{field}: {} is not set",
                            so_far(),
                            so_far()
                        ),
                    ));
                }
                other => {
                    return Err(self.error(
                        line,
                        format!(
                            "can't evaluate field {field} in {} ({})",
                            so_far(),
                            kind(other)
                        ),
                    ));
                }
            };
        }
        Ok(value.clone())
    }

    /// What `{{ value }}` prints: Go's `%v` for scalars, nothing for nil (as Helm does).
    fn print(&self, line: usize, value: &Value) -> Result<String, TemplateError> {
        match value {
            Value::Null => Ok(String::new()),
            Value::Bool(b) => Ok(b.to_string()),
            Value::String(s) => Ok(s.clone()),
            Value::Number(n) => Ok(go_number(n)),
            other => Err(self.error(
                line,
                format!("printing a {} is not supported; use toYaml", kind(other)),
            )),
        }
    }
}

/// Go's truth: false, 0, nil and empty strings, lists and dicts are false.
pub(super) fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "nil",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}
