//! Tokens of the policy language, each with the line and column (1-based, in characters) where
//! it starts.

use crate::ParseError;

/// One token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Tok {
    /// A name: letters, digits and `_`, starting with a letter or `_`.
    Ident(String),
    /// A decimal or `0x` hexadecimal integer, optionally negative.
    Int(i64),
    /// A double-quoted string, escapes resolved.
    Str(String),
    /// Punctuation and operators.
    Punct(&'static str),
    /// End of input.
    Eof,
}

impl Tok {
    /// How the token is shown in errors.
    pub(crate) fn describe(&self) -> String {
        match self {
            Tok::Ident(s) => format!("`{s}`"),
            Tok::Int(i) => format!("`{i}`"),
            Tok::Str(s) => {
                let short: String = s.chars().take(40).collect();
                if short.len() < s.len() {
                    format!("the string \"{short}…\"")
                } else {
                    format!("the string \"{short}\"")
                }
            }
            Tok::Punct(p) => format!("`{p}`"),
            Tok::Eof => "the end of the policy".into(),
        }
    }
}

/// A token and where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Token {
    pub(crate) tok: Tok,
    pub(crate) line: u32,
    pub(crate) column: u32,
    /// Byte offset of the token's first character.
    pub(crate) start: usize,
    /// Byte offset just past the token.
    pub(crate) end: usize,
}

/// Longest first, so `==` wins over `=`.
const PUNCT: [&str; 21] = [
    "==", "!=", "<=", ">=", "&&", "||", "=>", "=", "<", ">", "!", ":", ";", ",", ".", "[", "]",
    "{", "}", "(", ")",
];

struct Cursor<'a> {
    text: &'a str,
    pos: usize,
    line: u32,
    column: u32,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<char> {
        self.text.get(self.pos..).and_then(|s| s.chars().next())
    }

    fn peek2(&self) -> Option<char> {
        self.text.get(self.pos..).and_then(|s| s.chars().nth(1))
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        if c == '\n' {
            self.line = self.line.saturating_add(1);
            self.column = 1;
        } else {
            self.column = self.column.saturating_add(1);
        }
        Some(c)
    }

    fn err(&self, line: u32, column: u32, message: impl Into<String>) -> ParseError {
        ParseError {
            line,
            column,
            message: message.into(),
        }
    }
}

/// Splits a policy into tokens; comments (`// …` to the end of the line, `/* … */`) and
/// whitespace separate tokens and are dropped.
pub(crate) fn tokenize(text: &str) -> Result<Vec<Token>, ParseError> {
    let mut c = Cursor {
        text,
        pos: 0,
        line: 1,
        column: 1,
    };
    let mut out = Vec::new();
    loop {
        // Whitespace and comments.
        loop {
            match (c.peek(), c.peek2()) {
                (Some(ch), _) if ch.is_whitespace() || ch == '\u{feff}' => {
                    c.bump();
                }
                (Some('/'), Some('/')) => {
                    while let Some(ch) = c.peek() {
                        if ch == '\n' {
                            break;
                        }
                        c.bump();
                    }
                }
                (Some('/'), Some('*')) => {
                    let (line, column) = (c.line, c.column);
                    c.bump();
                    c.bump();
                    loop {
                        match (c.peek(), c.peek2()) {
                            (Some('*'), Some('/')) => {
                                c.bump();
                                c.bump();
                                break;
                            }
                            (Some(_), _) => {
                                c.bump();
                            }
                            (None, _) => {
                                return Err(c.err(
                                    line,
                                    column,
                                    "the comment `/*` is never closed",
                                ));
                            }
                        }
                    }
                }
                _ => break,
            }
        }
        let (line, column, start) = (c.line, c.column, c.pos);
        let Some(ch) = c.peek() else {
            out.push(Token {
                tok: Tok::Eof,
                line,
                column,
                start,
                end: start,
            });
            return Ok(out);
        };
        let tok = if ch.is_ascii_alphabetic() || ch == '_' || ch == '$' {
            let mut s = String::new();
            while let Some(ch) = c.peek() {
                if ch.is_ascii_alphanumeric() || ch == '_' || (ch == '$' && s.is_empty()) {
                    s.push(ch);
                    c.bump();
                } else {
                    break;
                }
            }
            if s == "$" {
                return Err(c.err(line, column, "unexpected character `$`"));
            }
            Tok::Ident(s)
        } else if ch.is_ascii_digit()
            || (ch == '-' && c.peek2().is_some_and(|d| d.is_ascii_digit()))
        {
            lex_int(&mut c, line, column)?
        } else if ch == '"' {
            lex_string(&mut c, line, column)?
        } else if let Some(p) = PUNCT.iter().find(|p| {
            c.text
                .get(c.pos..)
                .is_some_and(|rest| rest.starts_with(**p))
        }) {
            for _ in 0..p.len() {
                c.bump();
            }
            Tok::Punct(p)
        } else if matches!(ch, '\u{201c}' | '\u{201d}' | '\u{2018}' | '\u{2019}') {
            return Err(c.err(
                line,
                column,
                format!(
                    "unexpected character `{ch}` (a typographic quote): strings are written with \
                     the ASCII double quote `\"`"
                ),
            ));
        } else {
            return Err(c.err(line, column, format!("unexpected character `{ch}`")));
        };
        out.push(Token {
            tok,
            line,
            column,
            start,
            end: c.pos,
        });
    }
}

fn lex_int(c: &mut Cursor<'_>, line: u32, column: u32) -> Result<Tok, ParseError> {
    let negative = c.peek() == Some('-');
    if negative {
        c.bump();
    }
    let hex = c.peek() == Some('0') && matches!(c.peek2(), Some('x' | 'X'));
    if hex {
        c.bump();
        c.bump();
    }
    let mut digits = String::new();
    while let Some(ch) = c.peek() {
        if (hex && ch.is_ascii_hexdigit()) || (!hex && ch.is_ascii_digit()) {
            digits.push(ch);
            c.bump();
        } else {
            break;
        }
    }
    if c.peek()
        .is_some_and(|ch| ch.is_ascii_alphanumeric() || ch == '_')
    {
        let mut word = digits.clone();
        while let Some(ch) = c.peek() {
            if !(ch.is_ascii_alphanumeric() || ch == '_') {
                break;
            }
            word.push(ch);
            c.bump();
        }
        return Err(c.err(line, column, format!("`{word}` is not a number")));
    }
    let parsed = if hex {
        i64::from_str_radix(&digits, 16)
    } else {
        digits.parse::<i64>()
    };
    let value = parsed
        .ok()
        .and_then(|v| if negative { v.checked_neg() } else { Some(v) })
        .ok_or_else(|| {
            c.err(
                line,
                column,
                "the integer is out of range (integers are 64-bit signed)",
            )
        })?;
    Ok(Tok::Int(value))
}

fn lex_string(c: &mut Cursor<'_>, line: u32, column: u32) -> Result<Tok, ParseError> {
    c.bump(); // opening quote
    let mut s = String::new();
    loop {
        let (el, ec) = (c.line, c.column);
        match c.bump() {
            None => return Err(c.err(line, column, "the string is never closed (missing `\"`)")),
            Some('"') => return Ok(Tok::Str(s)),
            Some('\\') => match c.bump() {
                Some('"') => s.push('"'),
                Some('\\') => s.push('\\'),
                Some('/') => s.push('/'),
                Some('n') => s.push('\n'),
                Some('t') => s.push('\t'),
                Some('r') => s.push('\r'),
                Some(other) => {
                    return Err(c.err(
                        el,
                        ec,
                        format!(
                            "unknown escape `\\{other}` in a string (known: \\\" \\\\ \\/ \\n \\t \\r)"
                        ),
                    ));
                }
                None => {
                    return Err(c.err(line, column, "the string is never closed (missing `\"`)"));
                }
            },
            Some(ch) => s.push(ch),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<Tok> {
        tokenize(s).unwrap().into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn tokens_and_positions() {
        assert_eq!(
            toks("c:[type==\"$svn\", value>=-2] => permit(); // x\n0x1F"),
            vec![
                Tok::Ident("c".into()),
                Tok::Punct(":"),
                Tok::Punct("["),
                Tok::Ident("type".into()),
                Tok::Punct("=="),
                Tok::Str("$svn".into()),
                Tok::Punct(","),
                Tok::Ident("value".into()),
                Tok::Punct(">="),
                Tok::Int(-2),
                Tok::Punct("]"),
                Tok::Punct("=>"),
                Tok::Ident("permit".into()),
                Tok::Punct("("),
                Tok::Punct(")"),
                Tok::Punct(";"),
                Tok::Int(31),
                Tok::Eof,
            ]
        );
        let t = tokenize("a\n  /* x\n */ b").unwrap();
        assert_eq!((t[1].line, t[1].column), (3, 5));
    }

    #[test]
    fn lexical_errors_name_the_place() {
        let cases = [
            (
                "\"abc",
                "line 1, column 1: the string is never closed (missing `\"`)",
            ),
            (
                "x\n  \"a\\qb\"",
                "line 2, column 5: unknown escape `\\q` in a string (known: \\\" \\\\ \\/ \\n \\t \\r)",
            ),
            ("a # b", "line 1, column 3: unexpected character `#`"),
            (
                "99999999999999999999",
                "line 1, column 1: the integer is out of range (integers are 64-bit signed)",
            ),
            ("12ab", "line 1, column 1: `12ab` is not a number"),
            ("/* x", "line 1, column 1: the comment `/*` is never closed"),
            (
                "value=\"11\u{201d}",
                "line 1, column 7: the string is never closed (missing `\"`)",
            ),
            (
                "value=\u{201c}11",
                "line 1, column 7: unexpected character `\u{201c}` (a typographic quote): strings are written with the ASCII double quote `\"`",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(tokenize(text).unwrap_err().to_string(), want, "{text}");
        }
    }
}
