//! keepalived.conf tokens, split the way keepalived's reader does: words
//! separated by white space, `"..."` strings as one word, `{` and `}` as
//! words of their own wherever they stand (outside quotes), `#` and `!`
//! starting a comment to the end of the line (outside quotes; `\#` and `\!`
//! stand for the characters themselves), and line ends, which end a
//! statement. Also the splitting of a script string into words
//! ([`split_command`]), as keepalived does before exec'ing it.

use crate::config::diag::{Diagnostic, Position};
use std::path::Path;
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TokenKind {
    /// A word; `quoted` if it was written as `"..."`.
    Word {
        text: String,
        quoted: bool,
    },
    Open,
    Close,
    Newline,
    /// `include PATTERN` alone on its line; braces in the pattern are
    /// glob braces, not blocks (keepalived checks for `include` before it
    /// splits a line at braces).
    Include(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Token {
    pub kind: TokenKind,
    pub pos: Position,
}

/// Splits `text` (the contents of `file`) into tokens. Problems (an
/// unterminated quote) are reported and the rest of the line is skipped.
pub(crate) fn lex(file: &Arc<Path>, text: &str) -> (Vec<Token>, Vec<Diagnostic>) {
    let mut tokens = Vec::new();
    let mut errors = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line_no = u32::try_from(index + 1).unwrap_or(u32::MAX);
        if let Some((col, pattern)) = include_directive(line) {
            tokens.push(Token {
                kind: TokenKind::Include(pattern),
                pos: Position::new(file.clone(), line_no, col_of(col)),
            });
        } else {
            lex_line(file, line_no, line, &mut tokens, &mut errors);
        }
        tokens.push(Token {
            kind: TokenKind::Newline,
            pos: Position::new(file.clone(), line_no, col_of(line.chars().count())),
        });
    }
    (tokens, errors)
}

/// `include PATTERN` (PATTERN possibly quoted, a comment allowed after
/// it): the column index of `include` and the pattern.
fn include_directive(line: &str) -> Option<(usize, String)> {
    let mut in_quote = false;
    let end = line
        .char_indices()
        .find(|&(_, c)| {
            if c == '"' {
                in_quote = !in_quote;
            }
            !in_quote && (c == '#' || c == '!')
        })
        .map_or(line.len(), |(i, _)| i);
    let code = line.get(..end)?;
    let mut words = code.split_whitespace();
    let (Some("include"), Some(pattern), None) = (words.next(), words.next(), words.next()) else {
        return None;
    };
    let indent = code.chars().take_while(|c| c.is_whitespace()).count();
    let pattern = pattern
        .strip_prefix('"')
        .and_then(|p| p.strip_suffix('"'))
        .unwrap_or(pattern);
    Some((indent, pattern.to_string()))
}

fn col_of(char_index: usize) -> u32 {
    u32::try_from(char_index + 1).unwrap_or(u32::MAX)
}

fn lex_line(
    file: &Arc<Path>,
    line_no: u32,
    line: &str,
    tokens: &mut Vec<Token>,
    errors: &mut Vec<Diagnostic>,
) {
    let chars: Vec<char> = line.chars().collect();
    let pos = |i: usize| Position::new(file.clone(), line_no, col_of(i));
    let mut word = String::new();
    let mut word_start = 0;
    let flush = |word: &mut String, start: usize, tokens: &mut Vec<Token>| {
        if !word.is_empty() {
            tokens.push(Token {
                kind: TokenKind::Word {
                    text: std::mem::take(word),
                    quoted: false,
                },
                pos: pos(start),
            });
        }
    };
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        match c {
            '#' | '!' => break,
            '\\' if matches!(chars.get(i + 1), Some('#' | '!')) => {
                if word.is_empty() {
                    word_start = i;
                }
                word.extend(chars.get(i + 1));
                i += 2;
                continue;
            }
            '{' | '}' => {
                flush(&mut word, word_start, tokens);
                let kind = if c == '{' {
                    TokenKind::Open
                } else {
                    TokenKind::Close
                };
                tokens.push(Token { kind, pos: pos(i) });
            }
            '"' => {
                flush(&mut word, word_start, tokens);
                let rest = chars.get(i + 1..).unwrap_or_default();
                match rest.iter().position(|&q| q == '"') {
                    Some(len) => {
                        let text: String = rest.iter().take(len).collect();
                        tokens.push(Token {
                            kind: TokenKind::Word { text, quoted: true },
                            pos: pos(i),
                        });
                        i += len + 2;
                        continue;
                    }
                    None => {
                        errors.push(Diagnostic::new(pos(i), "unterminated quoted string"));
                        return;
                    }
                }
            }
            c if c.is_whitespace() => flush(&mut word, word_start, tokens),
            c => {
                if word.is_empty() {
                    word_start = i;
                }
                word.push(c);
            }
        }
        i += 1;
    }
    flush(&mut word, word_start, tokens);
}

/// Splits a script string into program and arguments as keepalived does
/// (alloc_strvec_quoted_escaped): white space separates words, `"..."` and
/// `'...'` quote, and backslash escapes (`\n`, `\t`, `\x41`, `\101`, `\cX`,
/// `\"`, ...) are decoded.
pub(crate) fn split_command(s: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Ok(words);
        }
        let mut word = String::new();
        let mut quote: Option<char> = None;
        while let Some(c) = chars.next() {
            match (c, quote) {
                ('\\', _) => word.push(unescape(&mut chars).ok_or("backslash at end of string")?),
                (q, Some(open)) if q == open => quote = None,
                ('"' | '\'', None) => quote = Some(c),
                (c, None) if c.is_whitespace() => break,
                (c, _) => word.push(c),
            }
        }
        if let Some(q) = quote {
            return Err(format!("missing terminating {q}"));
        }
        words.push(word);
    }
}

fn unescape(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Option<char> {
    let c = chars.next()?;
    let decoded = match c {
        'x' if chars.peek().is_some_and(char::is_ascii_hexdigit) => {
            let mut value = 0u32;
            while let Some(d) = chars.next_if(char::is_ascii_hexdigit) {
                value = (value << 4 | d.to_digit(16).unwrap_or(0)) & 0xff;
            }
            char::from_u32(value).unwrap_or('\0')
        }
        'c' if chars.peek().is_some() => {
            let next = chars.next().unwrap_or('\0');
            char::from_u32(u32::from(next) & 0x1f).unwrap_or('\0')
        }
        '0'..='7' => {
            let mut value = c.to_digit(8).unwrap_or(0);
            for _ in 0..2 {
                match chars.next_if(|d| d.is_digit(8)) {
                    Some(d) => value = (value << 3) + d.to_digit(8).unwrap_or(0),
                    None => break,
                }
            }
            char::from_u32(value & 0xff).unwrap_or('\0')
        }
        'a' => '\u{7}',
        'b' => '\u{8}',
        'E' => '\u{1b}',
        'f' => '\u{c}',
        'n' => '\n',
        'r' => '\r',
        't' => '\t',
        'v' => '\u{b}',
        other => other,
    };
    Some(decoded)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        let file: Arc<Path> = Arc::from(Path::new("t.conf"));
        let (tokens, errors) = lex(&file, text);
        assert!(errors.is_empty(), "{errors:?}");
        tokens
            .into_iter()
            .map(|t| match t.kind {
                TokenKind::Word { text, quoted: true } => format!("\"{text}\"@{}", t.pos.col),
                TokenKind::Word {
                    text,
                    quoted: false,
                } => format!("{text}@{}", t.pos.col),
                TokenKind::Open => "{".into(),
                TokenKind::Close => "}".into(),
                TokenKind::Newline => "NL".into(),
                TokenKind::Include(p) => format!("include {p}@{}", t.pos.col),
            })
            .collect()
    }

    #[test]
    fn braces_split_words_anywhere() {
        assert_eq!(
            words("authentication { auth_type PASS\nauth_pass aminglinux }"),
            [
                "authentication@1",
                "{",
                "auth_type@18",
                "PASS@28",
                "NL",
                "auth_pass@1",
                "aminglinux@11",
                "}",
                "NL"
            ]
        );
        assert_eq!(words("a{b}c"), ["a@1", "{", "b@3", "}", "c@5", "NL"]);
    }

    #[test]
    fn comments_end_lines_outside_quotes() {
        assert_eq!(
            words("  priority 100 # main\n! whole line"),
            ["priority@3", "100@12", "NL", "NL"]
        );
        assert_eq!(
            words("script \"/bin/x # not a comment\""),
            ["script@1", "\"/bin/x # not a comment\"@8", "NL"]
        );
        assert_eq!(words("auth_pass a\\#b!c"), ["auth_pass@1", "a#b@11", "NL"]);
    }

    #[test]
    fn include_lines_keep_their_braces() {
        assert_eq!(
            words("  include conf.d/{a,b}.conf # c\ninclude x y"),
            [
                "include conf.d/{a,b}.conf@3",
                "NL",
                "include@1",
                "x@9",
                "y@11",
                "NL"
            ]
        );
        assert_eq!(
            words("include \"/etc/k/*.conf\""),
            ["include /etc/k/*.conf@1", "NL"]
        );
    }

    #[test]
    fn greater_than_is_an_ordinary_character() {
        assert_eq!(
            words("auth_pass aminglinux>com"),
            ["auth_pass@1", "aminglinux>com@11", "NL"]
        );
    }

    #[test]
    fn unterminated_quote_is_an_error() {
        let file: Arc<Path> = Arc::from(Path::new("t.conf"));
        let (_, errors) = lex(&file, "script \"/bin/x\n");
        assert_eq!(errors.len(), 1);
        assert_eq!(
            errors[0].to_string(),
            "t.conf:1:8: unterminated quoted string"
        );
    }

    #[test]
    fn commands_split_like_keepalived() {
        assert_eq!(
            split_command("/bin/check  a 'b c' \"d\\\"e\"").unwrap(),
            ["/bin/check", "a", "b c", "d\"e"]
        );
        assert_eq!(split_command("x\\ty \\x41\\101").unwrap(), ["x\ty", "AA"]);
        assert_eq!(split_command("  ").unwrap(), Vec::<String>::new());
        assert!(split_command("'open").is_err());
        assert!(split_command("end\\").is_err());
    }
}
