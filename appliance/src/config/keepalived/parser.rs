//! keepalived.conf structure: reads the file and its `include`s into one
//! token stream, then groups it into statements (`keyword args...`) with
//! optional `{ ... }` blocks, keeping every word's position.
//!
//! `include PATTERN` is textual, as in keepalived: a line holding exactly
//! `include` and one word, at any depth, is replaced by the contents of the
//! matching files. The pattern may use shell wildcards and csh braces
//! (`{a,b}`); a relative pattern is relative to the directory of the file
//! that includes it (keepalived changes into that directory). Matches are
//! read in sorted order, directories are skipped. A pattern with wildcards
//! that matches nothing is accepted (keepalived only logs it); a plain path
//! that does not exist is an error here.
//!
//! Includes are bounded, so no file can make a reload hang or fill memory:
//! [`MAX_DEPTH`] levels, [`MAX_FILES`] files and [`MAX_TOTAL_BYTES`] in all,
//! [`MAX_ALTERNATIVES`] per brace pattern, each file read as
//! [`crate::config::file::read`] allows. A snippet with no includes of its
//! own may be included in several places (settings shared by instances);
//! a file that includes others and is reached twice (a loop, or a diamond,
//! which doubles at each level) is refused rather than expanded again.
//! Blocks nest at most [`MAX_NESTING`] deep and a brace pattern holds at
//! most [`MAX_BRACES`] braces, so that no line can overflow the stack.

use super::lexer::{Token, TokenKind, lex};
use crate::config::diag::{Diagnostic, Position};
use crate::config::file;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How deep includes nest below the top file.
pub(crate) const MAX_DEPTH: usize = 8;
/// Files read in all, the top one included (a conf.d of one file per
/// virtual server stays well inside).
pub(crate) const MAX_FILES: usize = 10_000;
/// Bytes read in all.
pub(crate) const MAX_TOTAL_BYTES: u64 = file::MAX_FILE_BYTES;
/// Paths one brace pattern expands to (`{a,b}{c,d}` is 4).
pub(crate) const MAX_ALTERNATIVES: usize = 1024;

/// How deep blocks may nest; keepalived's own go 4 deep (virtual_server,
/// real_server, HTTP_GET, url). The parse and the tree it builds recurse
/// once per level, so deeper blocks are refused and skipped: a file of
/// nothing but `{` would otherwise overflow the stack.
pub(crate) const MAX_NESTING: usize = 16;
/// Braces one include pattern may hold: its expansion recurses once per
/// pair, copying the pattern each time.
pub(crate) const MAX_BRACES: usize = 64;

/// What the includes read so far used of the bounds.
#[derive(Default)]
struct Includes {
    /// The files being expanded, outermost first.
    stack: Vec<PathBuf>,
    /// Every file read, by canonical path: where it was first included
    /// and whether it includes others.
    seen: HashMap<PathBuf, (Option<Position>, bool)>,
    /// Files read, repeats counted.
    reads: usize,
    bytes: u64,
}

/// A word of the file with its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Word {
    pub text: String,
    pub pos: Position,
}

/// `keyword args...` with an optional block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Statement {
    pub keyword: Word,
    pub args: Vec<Word>,
    pub block: Option<Vec<Statement>>,
}

/// Reads `path` (with its includes) and parses it into statements.
pub(crate) fn parse_file(path: &Path) -> (Vec<Statement>, Vec<Diagnostic>) {
    let mut errors = Vec::new();
    let mut tokens = Vec::new();
    load(
        path,
        None,
        &mut Includes::default(),
        &mut tokens,
        &mut errors,
    );
    let mut parser = Parser {
        tokens,
        next: 0,
        errors,
        depth: 0,
    };
    let statements = parser.items(None);
    (statements, parser.errors)
}

/// Parses `text` as the contents of `file`, resolving includes relative to
/// the file's directory.
pub(crate) fn parse_str(file: &Path, text: &str) -> (Vec<Statement>, Vec<Diagnostic>) {
    let mut errors = Vec::new();
    let mut tokens = Vec::new();
    let mut includes = Includes::default();
    let canonical = std::fs::canonicalize(file).unwrap_or_else(|_| file.to_path_buf());
    includes.seen.insert(canonical.clone(), (None, true));
    includes.reads = 1;
    includes.stack.push(canonical);
    expand(file, text, &mut includes, &mut tokens, &mut errors);
    let mut parser = Parser {
        tokens,
        next: 0,
        errors,
        depth: 0,
    };
    let statements = parser.items(None);
    (statements, parser.errors)
}

/// Parses `text` as the contents of `file` without reading any file: an
/// `include` is refused with a diagnostic (its braces still expanded, so a
/// pattern past [`MAX_ALTERNATIVES`] says so). For text that must not
/// reach the file system, such as the fuzz harness's.
pub(crate) fn parse_text(file: &Path, text: &str) -> (Vec<Statement>, Vec<Diagnostic>) {
    let (lexed, mut errors) = lex(&Arc::from(file), text);
    let mut tokens = Vec::with_capacity(lexed.len());
    for token in lexed {
        match token.kind {
            TokenKind::Include(pattern) => {
                if alternatives(&pattern, &token.pos, &mut errors).is_some() {
                    errors.push(Diagnostic::new(
                        token.pos,
                        format!(
                            "include: '{pattern}' not read: this config has no files to include"
                        ),
                    ));
                }
            }
            _ => tokens.push(token),
        }
    }
    let mut parser = Parser {
        tokens,
        next: 0,
        errors,
        depth: 0,
    };
    let statements = parser.items(None);
    (statements, parser.errors)
}

fn load(
    path: &Path,
    included_at: Option<&Position>,
    includes: &mut Includes,
    tokens: &mut Vec<Token>,
    errors: &mut Vec<Diagnostic>,
) {
    let at = || {
        included_at
            .cloned()
            .unwrap_or_else(|| Position::start_of(path))
    };
    let refuse = |errors: &mut Vec<Diagnostic>, message: String| {
        errors.push(Diagnostic::new(at(), message));
    };
    let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    if includes.stack.contains(&canonical) {
        return refuse(
            errors,
            format!("include loop: {} includes itself", path.display()),
        );
    }
    if let Some((first, true)) = includes.seen.get(&canonical) {
        let first = first
            .as_ref()
            .map_or_else(|| "as the top file".to_owned(), |p| format!("first at {p}"));
        return refuse(
            errors,
            format!(
                "include: {} is included a second time ({first}) and includes files itself: \
                 only a file without includes may be included twice",
                path.display()
            ),
        );
    }
    if includes.stack.len() > MAX_DEPTH {
        return refuse(
            errors,
            format!(
                "include: {} is nested more than {MAX_DEPTH} includes deep",
                path.display()
            ),
        );
    }
    if includes.reads >= MAX_FILES {
        return refuse(
            errors,
            format!(
                "include: {} would be file {}, more than the {MAX_FILES} a config may read",
                path.display(),
                MAX_FILES + 1
            ),
        );
    }
    includes.reads += 1;
    includes
        .seen
        .entry(canonical.clone())
        .or_insert_with(|| (included_at.cloned(), false));
    match file::read(path) {
        Ok(text) => {
            includes.bytes += u64::try_from(text.len()).unwrap_or(u64::MAX);
            if includes.bytes > MAX_TOTAL_BYTES {
                return refuse(
                    errors,
                    format!(
                        "include: {} brings the config past {MAX_TOTAL_BYTES} bytes in all",
                        path.display()
                    ),
                );
            }
            includes.stack.push(canonical.clone());
            let nests = expand(path, &text, includes, tokens, errors);
            includes.stack.pop();
            if let Some(entry) = includes.seen.get_mut(&canonical) {
                entry.1 |= nests;
            }
        }
        // An include names the file it cannot read; the top file is the
        // diagnostic's own.
        Err(e) => refuse(
            errors,
            match included_at {
                Some(_) => format!("cannot read {}: {e}", path.display()),
                None => format!("cannot read the file: {e}"),
            },
        ),
    }
}

/// Lexes `text` and splices in the files its `include` lines name;
/// whether it has any.
fn expand(
    path: &Path,
    text: &str,
    includes: &mut Includes,
    out: &mut Vec<Token>,
    errors: &mut Vec<Diagnostic>,
) -> bool {
    let file: Arc<Path> = Arc::from(path);
    let (tokens, lex_errors) = lex(&file, text);
    errors.extend(lex_errors);
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut nests = false;
    for token in tokens {
        match token.kind {
            TokenKind::Include(pattern) => {
                nests = true;
                for file in resolve_include(&dir, &pattern, &token.pos, errors) {
                    load(&file, Some(&token.pos), includes, out, errors);
                }
            }
            _ => out.push(token),
        }
    }
    nests
}

fn resolve_include(
    dir: &Path,
    pattern: &str,
    pos: &Position,
    errors: &mut Vec<Diagnostic>,
) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let Some(alternatives) = alternatives(pattern, pos, errors) else {
        return files;
    };
    for alternative in alternatives {
        let full = dir.join(&alternative);
        let has_wildcards = alternative.contains(['*', '?', '[']);
        if !has_wildcards {
            if full.is_dir() {
                continue;
            }
            if !full.exists() {
                errors.push(Diagnostic::new(
                    pos.clone(),
                    format!("include: {} does not exist", full.display()),
                ));
                continue;
            }
            files.push(full);
            continue;
        }
        let Some(full_pattern) = full.to_str() else {
            errors.push(Diagnostic::new(
                pos.clone(),
                format!("include: {} is not valid UTF-8", full.display()),
            ));
            continue;
        };
        match glob::glob(full_pattern) {
            Ok(paths) => {
                let mut matched: Vec<PathBuf> = paths
                    .filter_map(Result::ok)
                    .filter(|p| !p.is_dir())
                    .collect();
                matched.sort();
                files.extend(matched);
            }
            Err(e) => errors.push(Diagnostic::new(
                pos.clone(),
                format!("include: bad pattern '{pattern}': {e}"),
            )),
        }
    }
    files
}

/// The paths `pattern` expands to, or `None` with the problem reported.
fn alternatives(
    pattern: &str,
    pos: &Position,
    errors: &mut Vec<Diagnostic>,
) -> Option<Vec<String>> {
    let mut alternatives = Vec::new();
    if let Err(too_many) = expand_braces(pattern, &mut alternatives) {
        let problem = match too_many {
            TooMany::Paths => format!("expands to more than {MAX_ALTERNATIVES} paths"),
            TooMany::Braces => format!("holds more than {MAX_BRACES} braces"),
        };
        errors.push(Diagnostic::new(
            pos.clone(),
            format!("include: '{pattern}' {problem}"),
        ));
        return None;
    }
    Some(alternatives)
}

/// Why a brace pattern is not expanded.
#[derive(Debug, PartialEq, Eq)]
enum TooMany {
    Paths,
    Braces,
}

/// csh-style brace expansion, as glob(3) with GLOB_BRACE: `a{b,c}d` ->
/// `abd`, `acd`; nested braces allowed; unbalanced braces are literal.
/// Appends to `out`; `Err` once it would pass [`MAX_ALTERNATIVES`] (each
/// brace multiplies, so a short pattern can ask for millions), or for a
/// pattern of more than [`MAX_BRACES`] braces.
fn expand_braces(pattern: &str, out: &mut Vec<String>) -> Result<(), TooMany> {
    let literal = |out: &mut Vec<String>| {
        if out.len() >= MAX_ALTERNATIVES {
            return Err(TooMany::Paths);
        }
        out.push(pattern.to_string());
        Ok(())
    };
    let Some(open) = pattern.find('{') else {
        return literal(out);
    };
    if pattern.matches('{').count() > MAX_BRACES {
        return Err(TooMany::Braces);
    }
    let mut depth = 0usize;
    let mut commas = Vec::new();
    let mut close = None;
    for (i, c) in pattern.char_indices().skip_while(|&(i, _)| i < open) {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    close = Some(i);
                    break;
                }
            }
            ',' if depth == 1 => commas.push(i),
            _ => {}
        }
    }
    let Some(close) = close else {
        return literal(out);
    };
    let (Some(prefix), Some(suffix)) = (pattern.get(..open), pattern.get(close + 1..)) else {
        return literal(out);
    };
    let mut bounds = vec![open];
    bounds.extend(commas);
    bounds.push(close);
    for pair in bounds.windows(2) {
        if let [start, end] = pair
            && let Some(middle) = pattern.get(start + 1..*end)
        {
            expand_braces(&format!("{prefix}{middle}{suffix}"), out)?;
        }
    }
    Ok(())
}

struct Parser {
    tokens: Vec<Token>,
    next: usize,
    errors: Vec<Diagnostic>,
    /// Blocks open around the next token.
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.next)
    }

    fn bump(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.next).cloned();
        self.next += 1;
        t
    }

    /// Statements until the `}` closing `opened_by` (consumed), or the end
    /// of input at top level.
    fn items(&mut self, opened_by: Option<&Word>) -> Vec<Statement> {
        let mut items = Vec::new();
        while let Some(token) = self.bump() {
            match token.kind {
                TokenKind::Newline | TokenKind::Include(_) => {}
                TokenKind::Close if opened_by.is_some() => return items,
                TokenKind::Close => self
                    .errors
                    .push(Diagnostic::new(token.pos, "unexpected '}'")),
                TokenKind::Open => {
                    self.errors.push(Diagnostic::new(
                        token.pos.clone(),
                        "unexpected '{' (no keyword before it)",
                    ));
                    let anonymous = Word {
                        text: "{".into(),
                        pos: token.pos,
                    };
                    self.block(&anonymous);
                }
                TokenKind::Word { text, .. } => {
                    let keyword = Word {
                        text,
                        pos: token.pos,
                    };
                    items.push(self.statement(keyword));
                }
            }
        }
        if let Some(word) = opened_by {
            self.errors.push(Diagnostic::new(
                word.pos.clone(),
                format!("missing '}}' to close the block of '{}'", word.text),
            ));
        }
        items
    }

    /// The statements of the block `opener` opened (its `{` consumed), or
    /// none if it is nested too deep: then it is skipped to its `}`.
    fn block(&mut self, opener: &Word) -> Vec<Statement> {
        if self.depth < MAX_NESTING {
            self.depth += 1;
            let items = self.items(Some(opener));
            self.depth -= 1;
            return items;
        }
        self.errors.push(Diagnostic::new(
            opener.pos.clone(),
            format!(
                "'{}': blocks nested more than {MAX_NESTING} deep",
                opener.text
            ),
        ));
        let mut open = 1usize;
        while let Some(token) = self.bump() {
            match token.kind {
                TokenKind::Open => open += 1,
                TokenKind::Close if open == 1 => return Vec::new(),
                TokenKind::Close => open -= 1,
                _ => {}
            }
        }
        self.errors.push(Diagnostic::new(
            opener.pos.clone(),
            format!("missing '}}' to close the block of '{}'", opener.text),
        ));
        Vec::new()
    }

    fn statement(&mut self, keyword: Word) -> Statement {
        let mut args = Vec::new();
        while let Some(Token {
            kind: TokenKind::Word { text, .. },
            pos,
        }) = self.peek()
        {
            args.push(Word {
                text: text.clone(),
                pos: pos.clone(),
            });
            self.next += 1;
        }
        let mut ahead = self.next;
        while self
            .tokens
            .get(ahead)
            .is_some_and(|t| t.kind == TokenKind::Newline)
        {
            ahead += 1;
        }
        let block = if self
            .tokens
            .get(ahead)
            .is_some_and(|t| t.kind == TokenKind::Open)
        {
            self.next = ahead + 1;
            Some(self.block(&keyword))
        } else {
            None
        };
        Statement {
            keyword,
            args,
            block,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(items: &[Statement]) -> String {
        items
            .iter()
            .map(|s| {
                let mut out = format!(
                    "{}@{}:{}",
                    s.keyword.text, s.keyword.pos.line, s.keyword.pos.col
                );
                for a in &s.args {
                    out.push(' ');
                    out.push_str(&a.text);
                }
                if let Some(block) = &s.block {
                    out.push_str(&format!(" {{{}}}", render(block)));
                }
                out
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    #[test]
    fn blocks_on_the_same_or_the_next_line() {
        let (items, errors) = parse_str(
            Path::new("k.conf"),
            "a {\n b 1\n}\nc\n{\n d { e }\n}\nauthentication { auth_type PASS\nauth_pass x }\n",
        );
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(
            render(&items),
            "a@1:1 {b@2:2 1}; c@4:1 {d@6:2 {e@6:6}}; authentication@8:1 {auth_type@8:18 PASS; auth_pass@9:1 x}"
        );
    }

    #[test]
    fn unbalanced_braces_are_reported() {
        let (_, errors) = parse_str(Path::new("k.conf"), "a {\n b\n");
        assert_eq!(
            errors[0].to_string(),
            "k.conf:1:1: missing '}' to close the block of 'a'"
        );
        let (_, errors) = parse_str(Path::new("k.conf"), "}\n{ x }\n");
        let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            lines,
            [
                "k.conf:1:1: unexpected '}'",
                "k.conf:2:1: unexpected '{' (no keyword before it)"
            ]
        );
    }

    #[test]
    fn text_alone_refuses_includes_without_reading_them() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("b.conf"), "b 2\n").unwrap();
        let label = dir.path().join("k.conf");
        let text = "a 1\ninclude b.conf\nc {\n include {x,y}{1,2,3,4}{1,2,3,4}{1,2,3,4}{1,2,3,4}{1,2,3,4}\n}\n";
        let (items, errors) = parse_text(&label, text);
        assert_eq!(render(&items), "a@1:1 1; c@3:1 {}");
        let lines: Vec<String> = errors.iter().map(|e| e.message.clone()).collect();
        assert_eq!(
            lines,
            [
                "include: 'b.conf' not read: this config has no files to include",
                "include: '{x,y}{1,2,3,4}{1,2,3,4}{1,2,3,4}{1,2,3,4}{1,2,3,4}' expands to more than 1024 paths",
            ]
        );
    }

    #[test]
    fn blocks_nested_past_the_limit_are_refused_not_recursed_into() {
        // Recursing once per level, this overflowed the stack (parsing,
        // then dropping the tree) long before the file size limit.
        let depth = 100_000;
        let text = format!("{}{}\nafter 1\n", "a {".repeat(depth), "}".repeat(depth));
        let (items, errors) = parse_str(Path::new("k.conf"), &text);
        let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            lines,
            [format!(
                "k.conf:1:{}: 'a': blocks nested more than {MAX_NESTING} deep",
                3 * MAX_NESTING + 1
            )]
        );
        assert_eq!(items.len(), 2);
        assert_eq!(items[1].keyword.text, "after");
        // Unclosed, and through anonymous blocks too: each of the first
        // levels has no keyword and no '}', the next is skipped.
        let (_, errors) = parse_str(Path::new("k.conf"), &"{".repeat(depth));
        assert_eq!(errors.len(), 2 * (MAX_NESTING + 1) + 1);
        assert_eq!(
            errors[MAX_NESTING + 1].message,
            format!("'{{': blocks nested more than {MAX_NESTING} deep")
        );
    }

    #[test]
    fn a_pattern_of_many_braces_is_refused_not_recursed_into() {
        // Each brace pair was one level of recursion and one copy of the
        // pattern: a long include line overflowed the stack.
        let pattern = "{}".repeat(100_000);
        assert_eq!(
            expand_braces(&pattern, &mut Vec::new()),
            Err(TooMany::Braces)
        );
        let mut out = Vec::new();
        expand_braces(&"{a}".repeat(MAX_BRACES), &mut out).unwrap();
        assert_eq!(out, ["a".repeat(MAX_BRACES)]);
    }

    #[test]
    fn brace_expansion() {
        let expand = |p: &str| {
            let mut out = Vec::new();
            expand_braces(p, &mut out).unwrap();
            out
        };
        assert_eq!(expand("a{b,c}d"), ["abd", "acd"]);
        assert_eq!(expand("{x/{,y},z}"), ["x/", "x/y", "z"]);
        assert_eq!(expand("plain{"), ["plain{"]);
    }

    #[test]
    fn brace_expansion_stops_at_its_bound() {
        // 2^40 paths asked for; refused after MAX_ALTERNATIVES.
        let pattern = "{a,b}".repeat(40);
        let mut out = Vec::new();
        assert!(expand_braces(&pattern, &mut out).is_err());
        assert_eq!(out.len(), MAX_ALTERNATIVES);
        let (_, errors) = parse_str(
            Path::new("/nonexistent/k.conf"),
            &format!("include {pattern}\n"),
        );
        assert_eq!(
            errors.iter().map(ToString::to_string).collect::<Vec<_>>(),
            [format!(
                "/nonexistent/k.conf:1:1: include: '{pattern}' expands to more than {MAX_ALTERNATIVES} paths"
            )]
        );
    }

    fn messages(errors: &[Diagnostic]) -> Vec<String> {
        errors.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn a_diamond_of_includes_is_refused_not_expanded_again() {
        // main includes a and b, both include c, which includes d. Doubling
        // at each level, 20 such levels would be a million copies. d, a
        // snippet without includes, may be shared.
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("main.conf"), "include a.inc\ninclude b.inc\n").unwrap();
        std::fs::write(d.join("a.inc"), "include c.inc\ninclude d.inc\n").unwrap();
        std::fs::write(d.join("b.inc"), "include c.inc\n").unwrap();
        std::fs::write(d.join("c.inc"), "include d.inc\n").unwrap();
        std::fs::write(d.join("d.inc"), "word 1\n").unwrap();
        let (statements, errors) = parse_file(&d.join("main.conf"));
        assert_eq!(render(&statements), "word@1:1 1; word@1:1 1");
        assert_eq!(
            messages(&errors),
            [format!(
                "{}:1:1: include: {} is included a second time (first at {}:1:1) and includes files itself: only a file without includes may be included twice",
                d.join("b.inc").display(),
                d.join("c.inc").display(),
                d.join("a.inc").display()
            )]
        );
    }

    #[test]
    fn includes_nest_at_most_max_depth() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for level in 0..=MAX_DEPTH + 1 {
            std::fs::write(
                d.join(format!("{level}.conf")),
                format!("level {level}\ninclude {}.conf\n", level + 1),
            )
            .unwrap();
        }
        let (_, errors) = parse_file(&d.join("0.conf"));
        let deepest = MAX_DEPTH + 1;
        assert_eq!(
            messages(&errors),
            [format!(
                "{}:2:1: include: {} is nested more than {MAX_DEPTH} includes deep",
                d.join(format!("{}.conf", deepest - 1)).display(),
                d.join(format!("{deepest}.conf")).display()
            )]
        );
    }

    #[test]
    fn a_fifo_or_a_device_is_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        nix::unistd::mkfifo(&d.join("fifo.conf"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        std::fs::write(
            d.join("main.conf"),
            "include fifo.conf\ninclude /dev/zero\n",
        )
        .unwrap();
        let (_, errors) = parse_file(&d.join("main.conf"));
        let main = d.join("main.conf");
        assert_eq!(
            messages(&errors),
            [
                format!(
                    "{}:1:1: cannot read {}: not a regular file (a FIFO): configs are read from files only",
                    main.display(),
                    d.join("fifo.conf").display()
                ),
                format!(
                    "{}:2:1: cannot read /dev/zero: not a regular file (a character device): configs are read from files only",
                    main.display()
                ),
            ]
        );
    }

    #[test]
    fn includes_with_globs_relative_to_the_including_file() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("conf.d");
        std::fs::create_dir(&sub).unwrap();
        std::fs::write(
            dir.path().join("main.conf"),
            "top {\n include conf.d/*.conf\n}\ninclude {x,y}.inc\n",
        )
        .unwrap();
        std::fs::write(sub.join("b.conf"), "second 2\n").unwrap();
        std::fs::write(sub.join("a.conf"), "first 1\ninclude ../x.inc\n").unwrap();
        std::fs::write(dir.path().join("x.inc"), "xx\n").unwrap();
        std::fs::write(dir.path().join("y.inc"), "yy\n").unwrap();
        let (items, errors) = parse_file(&dir.path().join("main.conf"));
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(
            render(&items),
            "top@1:1 {first@1:1 1; xx@1:1; second@1:1 2}; xx@1:1; yy@1:1"
        );
        let Some(block) = &items[0].block else {
            panic!("no block")
        };
        assert_eq!(
            block[2].keyword.pos.file.as_ref(),
            sub.join("b.conf").as_path()
        );
    }

    #[test]
    fn missing_include_and_include_loops_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let main = dir.path().join("main.conf");
        std::fs::write(
            &main,
            "include nothere.conf\ninclude none-*.conf\ninclude main.conf\n",
        )
        .unwrap();
        let (_, errors) = parse_file(&main);
        let first = errors[0].to_string();
        assert!(
            first.ends_with(&format!(
                "main.conf:1:1: include: {} does not exist",
                dir.path().join("nothere.conf").display()
            )),
            "{first}"
        );
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert_eq!(
            errors[1].to_string(),
            format!(
                "{}:3:1: include loop: {} includes itself",
                main.display(),
                main.display()
            )
        );
    }
}
