//! Splits CQL text into tokens, each with the line and column it starts at,
//! so that syntax errors can point at the problem.

use std::fmt;

/// One token of CQL.
#[derive(Debug, Clone, PartialEq)]
pub enum Token {
    /// An unquoted identifier or keyword, as written.
    Word(String),
    /// A `"quoted identifier"`, case kept.
    Quoted(String),
    /// A `'string literal'`.
    Str(String),
    Integer(String),
    Float(String),
    /// `0x...`
    Hex(Vec<u8>),
    Uuid(String),
    /// One of `( ) , ; . = < > <= >= != * ? : [ ] { } + -`.
    Symbol(&'static str),
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Token::Word(w) => write!(f, "{w}"),
            Token::Quoted(q) => write!(f, "\"{q}\""),
            Token::Str(s) => write!(f, "'{s}'"),
            Token::Integer(n) | Token::Float(n) | Token::Uuid(n) => write!(f, "{n}"),
            Token::Hex(_) => write!(f, "0x..."),
            Token::Symbol(s) => write!(f, "{s}"),
        }
    }
}

/// A token and where it starts (1-based line and column).
#[derive(Debug, Clone, PartialEq)]
pub struct Spanned {
    pub token: Token,
    pub line: usize,
    pub column: usize,
}

/// Text that is not CQL, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}:{column}: {message}")]
pub struct LexError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

const SYMBOLS: [&str; 21] = [
    "<=", ">=", "!=", "(", ")", ",", ";", ".", "=", "<", ">", "*", "?", ":", "[", "]", "{", "}",
    "+", "-", "/",
];

fn is_uuid(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() == 36
        && bytes.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

/// Tokenizes a whole statement (or several).
pub fn tokenize(text: &str) -> Result<Vec<Spanned>, LexError> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let (mut i, mut line, mut column) = (0usize, 1usize, 1usize);
    let at = |i: usize| chars.get(i).copied();
    while let Some(c) = at(i) {
        let (start_line, start_column) = (line, column);
        let fail = |message: String| LexError {
            line: start_line,
            column: start_column,
            message,
        };
        let advance = |n: usize, i: &mut usize, line: &mut usize, column: &mut usize| {
            for _ in 0..n {
                if chars.get(*i) == Some(&'\n') {
                    *line += 1;
                    *column = 1;
                } else {
                    *column += 1;
                }
                *i += 1;
            }
        };
        if c.is_whitespace() {
            advance(1, &mut i, &mut line, &mut column);
            continue;
        }
        // Comments: -- and // to end of line, /* ... */.
        if (c == '-' && at(i + 1) == Some('-')) || (c == '/' && at(i + 1) == Some('/')) {
            while at(i).is_some_and(|c| c != '\n') {
                advance(1, &mut i, &mut line, &mut column);
            }
            continue;
        }
        if c == '/' && at(i + 1) == Some('*') {
            advance(2, &mut i, &mut line, &mut column);
            loop {
                match (at(i), at(i + 1)) {
                    (Some('*'), Some('/')) => {
                        advance(2, &mut i, &mut line, &mut column);
                        break;
                    }
                    (Some(_), _) => advance(1, &mut i, &mut line, &mut column),
                    (None, _) => return Err(fail("unterminated /* comment".into())),
                }
            }
            continue;
        }
        if c == '\'' || c == '"' {
            let quote = c;
            let mut value = String::new();
            advance(1, &mut i, &mut line, &mut column);
            loop {
                match at(i) {
                    None => {
                        let what = if quote == '\'' {
                            "string"
                        } else {
                            "quoted identifier"
                        };
                        return Err(fail(format!("unterminated {what}")));
                    }
                    Some(ch) if ch == quote => {
                        if at(i + 1) == Some(quote) {
                            value.push(quote);
                            advance(2, &mut i, &mut line, &mut column);
                        } else {
                            advance(1, &mut i, &mut line, &mut column);
                            break;
                        }
                    }
                    Some(ch) => {
                        value.push(ch);
                        advance(1, &mut i, &mut line, &mut column);
                    }
                }
            }
            let token = if quote == '\'' {
                Token::Str(value)
            } else if value.is_empty() {
                // As in Cassandra's grammar: a quoted name has a character.
                return Err(LexError {
                    line: start_line,
                    column: start_column,
                    message: "an empty quoted name (\"\") names nothing; give a name".into(),
                });
            } else {
                Token::Quoted(value)
            };
            tokens.push(Spanned {
                token,
                line: start_line,
                column: start_column,
            });
            continue;
        }
        if c == '$' && at(i + 1) == Some('$') {
            advance(2, &mut i, &mut line, &mut column);
            let mut value = String::new();
            loop {
                match (at(i), at(i + 1)) {
                    (Some('$'), Some('$')) => {
                        advance(2, &mut i, &mut line, &mut column);
                        break;
                    }
                    (Some(ch), _) => {
                        value.push(ch);
                        advance(1, &mut i, &mut line, &mut column);
                    }
                    (None, _) => return Err(fail("unterminated $$ string".into())),
                }
            }
            tokens.push(Spanned {
                token: Token::Str(value),
                line: start_line,
                column: start_column,
            });
            continue;
        }
        if c.is_ascii_alphanumeric() || c == '_' {
            let mut end = i;
            while at(end).is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
                end += 1;
            }
            let word: String = chars[i..end].iter().collect();
            // A run with '-' is only a UUID; otherwise stop at the first '-'.
            let (token, len) = if is_uuid(&word) {
                (Token::Uuid(word.clone()), word.chars().count())
            } else {
                let mut plain_end = i;
                while at(plain_end).is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                    plain_end += 1;
                }
                let plain: String = chars[i..plain_end].iter().collect();
                let len = plain.chars().count();
                if c.is_ascii_digit() {
                    if let Some(hex) = plain
                        .strip_prefix("0x")
                        .or_else(|| plain.strip_prefix("0X"))
                    {
                        if hex.len() % 2 != 0 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
                            return Err(fail(format!("bad blob literal {plain}")));
                        }
                        let bytes = (0..hex.len())
                            .step_by(2)
                            .map(|k| u8::from_str_radix(&hex[k..k + 2], 16).unwrap_or(0))
                            .collect();
                        (Token::Hex(bytes), len)
                    } else if plain.chars().all(|c| c.is_ascii_digit()) {
                        // A float: digits '.' digits [e[+-]digits]
                        if at(plain_end) == Some('.')
                            && at(plain_end + 1).is_some_and(|c| c.is_ascii_digit())
                        {
                            let mut end = plain_end + 1;
                            while at(end).is_some_and(|c| c.is_ascii_digit()) {
                                end += 1;
                            }
                            if matches!(at(end), Some('e' | 'E')) {
                                end += 1;
                                if matches!(at(end), Some('+' | '-')) {
                                    end += 1;
                                }
                                while at(end).is_some_and(|c| c.is_ascii_digit()) {
                                    end += 1;
                                }
                            }
                            let text: String = chars[i..end].iter().collect();
                            (Token::Float(text), end - i)
                        } else {
                            (Token::Integer(plain), len)
                        }
                    } else if plain.len() > 1
                        && plain[..plain.len() - 1].chars().all(|c| c.is_ascii_digit())
                        && plain.ends_with(['e', 'E'])
                        && matches!(at(plain_end), Some('+' | '-'))
                        && at(plain_end + 1).is_some_and(|c| c.is_ascii_digit())
                    {
                        // digits e[+-]digits: a float with a signed exponent.
                        let mut end = plain_end + 1;
                        while at(end).is_some_and(|c| c.is_ascii_digit()) {
                            end += 1;
                        }
                        let text: String = chars[i..end].iter().collect();
                        (Token::Float(text), end - i)
                    } else if plain.to_ascii_lowercase().split_once('e').is_some_and(
                        |(mantissa, exponent)| {
                            !mantissa.is_empty()
                                && !exponent.is_empty()
                                && mantissa.chars().all(|c| c.is_ascii_digit())
                                && exponent.chars().all(|c| c.is_ascii_digit())
                        },
                    ) {
                        (Token::Float(plain), len)
                    } else {
                        (Token::Word(plain), len)
                    }
                } else {
                    (Token::Word(plain), len)
                }
            };
            tokens.push(Spanned {
                token,
                line: start_line,
                column: start_column,
            });
            advance(len, &mut i, &mut line, &mut column);
            continue;
        }
        let rest: String = chars[i..chars.len().min(i + 2)].iter().collect();
        if let Some(symbol) = SYMBOLS.iter().find(|s| rest.starts_with(**s)) {
            tokens.push(Spanned {
                token: Token::Symbol(symbol),
                line: start_line,
                column: start_column,
            });
            advance(symbol.len(), &mut i, &mut line, &mut column);
            continue;
        }
        return Err(fail(format!("unexpected character {c:?}")));
    }
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tests fail with the error instead of panicking on it.
    type TestResult = Result<(), Box<dyn std::error::Error>>;

    #[test]
    fn tokens_with_positions() -> TestResult {
        let tokens = tokenize("SELECT a, \"B\" FROM ks.t\n WHERE k = 'it''s' AND u = 123e4567-e89b-12d3-a456-426614174000 AND f >= -1.5e3 -- c")?;
        let texts: Vec<String> = tokens.iter().map(|t| t.token.to_string()).collect();
        assert_eq!(
            texts,
            vec![
                "SELECT",
                "a",
                ",",
                "\"B\"",
                "FROM",
                "ks",
                ".",
                "t",
                "WHERE",
                "k",
                "=",
                "'it's'",
                "AND",
                "u",
                "=",
                "123e4567-e89b-12d3-a456-426614174000",
                "AND",
                "f",
                ">=",
                "-",
                "1.5e3"
            ]
        );
        let where_token = &tokens[8];
        assert_eq!((where_token.line, where_token.column), (2, 2));
        Ok(())
    }

    #[test]
    fn floats_take_signed_exponents_without_a_fraction() -> Result<(), LexError> {
        let tokens = tokenize("1E-5 2e+10 3E7 4.5E-2 1234567e-89ab-cdef-0123-456789abcdef")?;
        let texts: Vec<(bool, String)> = tokens
            .iter()
            .map(|t| (matches!(t.token, Token::Float(_)), t.token.to_string()))
            .collect();
        assert_eq!(
            texts,
            [
                (true, "1E-5".to_owned()),
                (true, "2e+10".to_owned()),
                (true, "3E7".to_owned()),
                (true, "4.5E-2".to_owned()),
                (false, "1234567e-89ab-cdef-0123-456789abcdef".to_owned()),
            ]
        );
        Ok(())
    }

    #[test]
    fn errors_point_at_the_problem() {
        let err = tokenize("SELECT 'abc").unwrap_err();
        assert_eq!((err.line, err.column), (1, 8));
        let err = tokenize("SELECT #").unwrap_err();
        assert!(err.message.contains('#'));
    }
}
