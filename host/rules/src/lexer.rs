//! Turns rule text into tokens. The lexer never fails: characters it does not
//! know and unterminated strings become tokens of their own, so that the
//! parser reports them with what it expected at that point.

use crate::Span;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    /// A name or a keyword; which one depends on where it stands.
    Ident(String),
    Str(String),
    Number(f64),
    /// `true`/`false`.
    Bool(bool),
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    Dot,
    Minus,
    Plus,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    /// A string without its closing quote.
    Unterminated,
    /// A string with an escape the language does not know (`\q`).
    BadEscape(char),
    /// A character that starts no token.
    Unknown(char),
    Eof,
}

#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub tok: Tok,
    pub span: Span,
    /// The token's text as written (for "found …" in errors).
    pub text: String,
}

impl Token {
    /// How an error names this token.
    pub fn describe(&self) -> String {
        match &self.tok {
            Tok::Eof => "end of input".to_owned(),
            Tok::Unterminated => "a string without its closing quote".to_owned(),
            Tok::BadEscape(c) => format!("an unknown escape \"\\{c}\" in a string"),
            Tok::Str(_) => format!("the string {}", self.text),
            _ => format!("\"{}\"", self.text),
        }
    }
}

pub(crate) fn lex(source: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut chars = source.char_indices().peekable();
    let (mut line, mut column) = (1u32, 1u32);
    // Advances over one char, keeping line and column current.
    macro_rules! bump {
        () => {{
            let next = chars.next();
            if let Some((_, c)) = next {
                if c == '\n' {
                    line += 1;
                    column = 1;
                } else {
                    column += 1;
                }
            }
            next
        }};
    }
    while let Some(&(start, c)) = chars.peek() {
        if c.is_whitespace() {
            bump!();
            continue;
        }
        if c == '#' {
            // A comment runs to the end of the line.
            while chars.peek().is_some_and(|&(_, c)| c != '\n') {
                bump!();
            }
            continue;
        }
        let (start_line, start_column) = (line, column);
        bump!();
        let tok = match c {
            '(' => Tok::LParen,
            ')' => Tok::RParen,
            '[' => Tok::LBracket,
            ']' => Tok::RBracket,
            ',' => Tok::Comma,
            '.' => Tok::Dot,
            '-' => Tok::Minus,
            '+' => Tok::Plus,
            '=' => Tok::Eq,
            '!' if chars.peek().is_some_and(|&(_, c)| c == '=') => {
                bump!();
                Tok::Ne
            }
            '<' | '>' => {
                let eq = chars.peek().is_some_and(|&(_, c)| c == '=');
                if eq {
                    bump!();
                }
                match (c, eq) {
                    ('<', false) => Tok::Lt,
                    ('<', true) => Tok::Le,
                    ('>', false) => Tok::Gt,
                    _ => Tok::Ge,
                }
            }
            '"' => {
                let mut value = String::new();
                let mut tok = None;
                loop {
                    match bump!() {
                        None => break tok.unwrap_or(Tok::Unterminated),
                        Some((_, '"')) => break tok.unwrap_or(Tok::Str(value)),
                        Some((_, '\\')) => match bump!() {
                            None => break Tok::Unterminated,
                            Some((_, e)) => match e {
                                '"' => value.push('"'),
                                '\\' => value.push('\\'),
                                'n' => value.push('\n'),
                                't' => value.push('\t'),
                                other => {
                                    tok.get_or_insert(Tok::BadEscape(other));
                                }
                            },
                        },
                        Some((_, '\n')) if tok.is_none() => {
                            // Strings stay on one line: a missing quote is
                            // reported where the string began, not pages later.
                            break Tok::Unterminated;
                        }
                        Some((_, c)) => value.push(c),
                    }
                }
            }
            c if c.is_ascii_digit() => {
                let mut seen_dot = false;
                while let Some(&(_, d)) = chars.peek() {
                    if d.is_ascii_digit() {
                        bump!();
                    } else if d == '.' && !seen_dot && {
                        // A dot belongs to the number only if a digit follows.
                        let mut ahead = chars.clone();
                        ahead.next();
                        ahead.peek().is_some_and(|&(_, d)| d.is_ascii_digit())
                    } {
                        seen_dot = true;
                        bump!();
                    } else {
                        break;
                    }
                }
                let end = chars.peek().map_or(source.len(), |&(i, _)| i);
                // Digits with at most one dot always parse; overflow gives inf.
                let value: f64 = source[start..end].parse().unwrap_or(f64::INFINITY);
                Tok::Number(value)
            }
            c if c.is_alphabetic() || c == '_' => {
                while chars
                    .peek()
                    .is_some_and(|&(_, d)| d.is_alphanumeric() || d == '_')
                {
                    bump!();
                }
                let end = chars.peek().map_or(source.len(), |&(i, _)| i);
                match &source[start..end] {
                    "true" => Tok::Bool(true),
                    "false" => Tok::Bool(false),
                    word => Tok::Ident(word.to_owned()),
                }
            }
            other => Tok::Unknown(other),
        };
        let end = chars.peek().map_or(source.len(), |&(i, _)| i);
        tokens.push(Token {
            tok,
            span: Span {
                start,
                end,
                line: start_line,
                column: start_column,
            },
            text: source[start..end].to_owned(),
        });
    }
    tokens.push(Token {
        tok: Tok::Eof,
        span: Span {
            start: source.len(),
            end: source.len(),
            line,
            column,
        },
        text: String::new(),
    });
    tokens
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(source: &str) -> Vec<Tok> {
        lex(source).into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn operators_numbers_and_names() {
        assert_eq!(
            toks("trait.age >= 30.5 != <= < > = ( ) [ ] , - +"),
            vec![
                Tok::Ident("trait".into()),
                Tok::Dot,
                Tok::Ident("age".into()),
                Tok::Ge,
                Tok::Number(30.5),
                Tok::Ne,
                Tok::Le,
                Tok::Lt,
                Tok::Gt,
                Tok::Eq,
                Tok::LParen,
                Tok::RParen,
                Tok::LBracket,
                Tok::RBracket,
                Tok::Comma,
                Tok::Minus,
                Tok::Plus,
                Tok::Eof,
            ]
        );
    }

    #[test]
    fn strings_escapes_and_comments() {
        assert_eq!(
            toks("\"a\\\"b\\\\c\\nd\" # a comment\n true false"),
            vec![
                Tok::Str("a\"b\\c\nd".into()),
                Tok::Bool(true),
                Tok::Bool(false),
                Tok::Eof
            ]
        );
        assert_eq!(toks("\"abc"), vec![Tok::Unterminated, Tok::Eof]);
        assert_eq!(
            toks("\"ab\ncd\""),
            vec![
                Tok::Unterminated,
                Tok::Ident("cd".into()),
                Tok::Unterminated,
                Tok::Eof
            ]
        );
        assert_eq!(toks("\"a\\qb\""), vec![Tok::BadEscape('q'), Tok::Eof]);
        assert_eq!(toks("@"), vec![Tok::Unknown('@'), Tok::Eof]);
        assert_eq!(toks("!"), vec![Tok::Unknown('!'), Tok::Eof]);
    }

    #[test]
    fn a_dot_after_a_number_is_not_a_fraction_without_digits() {
        assert_eq!(
            toks("3.x"),
            vec![Tok::Number(3.0), Tok::Dot, Tok::Ident("x".into()), Tok::Eof]
        );
    }

    #[test]
    fn positions_count_lines_and_characters() {
        let tokens = lex("a\n  ö = 1");
        let eq = &tokens[2];
        assert_eq!(eq.tok, Tok::Eq);
        assert_eq!((eq.span.line, eq.span.column), (2, 5));
        assert_eq!(eq.span.start, 7);
    }
}
