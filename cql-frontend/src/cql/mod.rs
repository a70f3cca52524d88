//! The CQL language: [`lexer`] (tokens with positions), [`ast`] (statements),
//! [`parser`] (recursive descent, errors with line and column).

pub mod ast;
pub mod lexer;
pub mod parser;
