//! What a SQL expression in a definition may be: bounded in size before it
//! is parsed, and, once planned, scalar and deterministic.
//!
//! Size first, on the raw text: a filter of 10,000 `+ 1` terms parses into a
//! syntax tree 10,000 levels deep, and walking or even dropping such a tree
//! overflowed the stack (exit 134, no message), so the bound must hold before
//! any tree exists. Bytes are checked first (a cheap bound on everything
//! after), then tokens (the tree has at most one node per token, so they
//! bound its depth too), then bracket depth (the parser recurses per bracket).
//!
//! Then meaning: a governed number must be the same every time it is
//! computed over the same data, because its fingerprint and the cache vouch
//! for it. So a governed expression is a scalar function of one row: no
//! subquery (which could read any table, or `range()`), no aggregate or
//! window (which belong to the metric's `measure`), and no function whose
//! value changes between calls (`random()`) or between runs (`now()`).

use std::ops::ControlFlow;

use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::logical_expr::{Expr, Volatility};
use datafusion::sql::sqlparser::ast::{
    BinaryOperator, Expr as SqlExpr, Value, Visit, VisitMut, Visitor, visit_expressions_mut,
};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

use crate::decimal::Dec;

/// Bounds on the text of one SQL expression or statement.
#[derive(Debug, Clone, Copy)]
pub struct TextLimits {
    /// What the text is, for the message ("a governed expression").
    pub what: &'static str,
    pub bytes: usize,
    pub tokens: usize,
    pub brackets: usize,
    /// The deepest expression syntax tree. DataFusion's planning takes time
    /// that grows with the square of an expression's depth (in a debug
    /// build a chain of 1,000 `+ 1` took 0.7 s, 4,900 took 17 s, and 9,000
    /// overflowed a 64 MiB stack after 22 s); 128 levels take a tenth of a
    /// second. Checked on the parser's tree, before DataFusion sees it.
    pub depth: usize,
    /// Query blocks (`SELECT`s): a chain of 3,000 `UNION ALL SELECT 1`
    /// took 45 s to plan and 6,600 overflowed the stack; a CTE chain of
    /// 2,200 took 1.6 GB. Unbounded for governed expressions, which may hold
    /// none at all (see [`meaning_problem`]).
    pub queries: usize,
    /// Relations read: 1,000 comma-joined subqueries took 117 s to plan.
    pub relations: usize,
}

/// An expression in a definition. The sample's longest is under 200 bytes
/// and 40 tokens; a list of a few hundred values still fits.
pub const GOVERNED: TextLimits = TextLimits {
    what: "a governed expression",
    bytes: 32 * 1024,
    tokens: 2_000,
    brackets: 32,
    depth: 128,
    queries: usize::MAX,
    relations: usize::MAX,
};

/// A statement given to `canon sql`: ad hoc, so roomier, but still bounded
/// so that no statement can overflow the stack or plan for minutes.
pub const AD_HOC: TextLimits = TextLimits {
    what: "a `canon sql` statement",
    bytes: 256 * 1024,
    tokens: 20_000,
    brackets: 64,
    depth: 256,
    queries: 64,
    relations: 64,
};

/// Why `sql` is over `limits`, or None when it is within them. A text the
/// tokenizer rejects (an unterminated string, say) is left to the parser,
/// whose message says what is wrong with it.
pub fn text_problem(sql: &str, limits: &TextLimits) -> Option<String> {
    let n = |v: usize| Dec::from_int(v as i64).grouped();
    if sql.len() > limits.bytes {
        return Some(format!(
            "the text is {} bytes; {} is limited to {} bytes",
            n(sql.len()),
            limits.what,
            n(limits.bytes)
        ));
    }
    let tokens: Vec<Token> = Tokenizer::new(&GenericDialect {}, sql)
        .tokenize()
        .ok()?
        .into_iter()
        .filter(|t| !matches!(t, Token::Whitespace(_)))
        .collect();
    let count = tokens.len();
    let queries = tokens
        .iter()
        .filter(|t| matches!(t, Token::Word(w) if w.value.eq_ignore_ascii_case("SELECT")))
        .count();
    if queries > limits.queries {
        return Some(format!(
            "the text has {} SELECTs; {} is limited to {}",
            n(queries),
            limits.what,
            n(limits.queries)
        ));
    }
    // Brackets, and the nesting of data types, which the parser also reads
    // by recursion: `ARRAY<ARRAY<…>>` (and STRUCT, MAP) and `INT[][]…`
    // (a run of empty pairs), which 800 levels deep overflowed the stack.
    let mut depth = 0usize;
    let mut deepest = 0usize;
    let mut angles = 0usize;
    let mut empty_pairs = 0usize;
    for (i, token) in tokens.iter().enumerate() {
        let after_type_word = i > 0
            && matches!(&tokens[i - 1], Token::Word(w)
                if ["ARRAY", "STRUCT", "MAP"].iter().any(|k| w.value.eq_ignore_ascii_case(k)));
        match token {
            Token::LBracket if matches!(tokens.get(i + 1), Some(Token::RBracket)) => {
                empty_pairs += 1;
                deepest = deepest.max(depth + angles + empty_pairs);
                continue;
            }
            Token::RBracket if i > 0 && matches!(tokens[i - 1], Token::LBracket) => continue,
            Token::LParen | Token::LBracket | Token::LBrace => depth += 1,
            Token::RParen | Token::RBracket | Token::RBrace => depth = depth.saturating_sub(1),
            Token::Lt if after_type_word => angles += 1,
            Token::Gt if angles > 0 => angles -= 1,
            Token::ShiftRight if angles > 0 => angles = angles.saturating_sub(2),
            _ => {}
        }
        empty_pairs = 0;
        deepest = deepest.max(depth + angles);
    }
    if deepest > limits.brackets {
        return Some(format!(
            "brackets (or data types) nest {} deep; {} is limited to {} levels",
            n(deepest),
            limits.what,
            n(limits.brackets)
        ));
    }
    if count > limits.tokens {
        return Some(format!(
            "the text has {} tokens; {} is limited to {}",
            n(count),
            limits.what,
            n(limits.tokens)
        ));
    }
    None
}

/// Why the syntax tree `node` is beyond `limits` in shape, or None: nested
/// expressions deeper than `limits.depth`, or more relations (tables,
/// subqueries, table functions) than `limits.relations`. One walk, which
/// stops at the first limit passed, so a tree of any size costs at most
/// that much to refuse.
pub fn shape_problem(node: &impl Visit, limits: &TextLimits) -> Option<String> {
    #[derive(Default)]
    struct Shape {
        depth: usize,
        relations: usize,
    }
    struct Walk<'a> {
        now: Shape,
        limits: &'a TextLimits,
    }
    impl Visitor for Walk<'_> {
        /// Which limit was passed.
        type Break = &'static str;
        fn pre_visit_expr(&mut self, _: &SqlExpr) -> ControlFlow<&'static str> {
            self.now.depth += 1;
            if self.now.depth > self.limits.depth {
                return ControlFlow::Break("depth");
            }
            ControlFlow::Continue(())
        }
        fn post_visit_expr(&mut self, _: &SqlExpr) -> ControlFlow<&'static str> {
            self.now.depth -= 1;
            ControlFlow::Continue(())
        }
        fn pre_visit_table_factor(
            &mut self,
            _: &datafusion::sql::sqlparser::ast::TableFactor,
        ) -> ControlFlow<&'static str> {
            self.now.relations += 1;
            if self.now.relations > self.limits.relations {
                return ControlFlow::Break("relations");
            }
            ControlFlow::Continue(())
        }
    }
    let mut walk = Walk {
        now: Shape::default(),
        limits,
    };
    match node.visit(&mut walk) {
        ControlFlow::Continue(()) => None,
        ControlFlow::Break("relations") => Some(format!(
            "the statement reads more than {} relations, the limit for {}",
            limits.relations, limits.what
        )),
        ControlFlow::Break(_) => Some(format!(
            "the expression nests more than {} levels deep, the limit for {} (each operator of a chain is a level, except AND and OR, whose chains are balanced first)",
            limits.depth, limits.what
        )),
    }
}

/// Rebuilds each chain of AND (and each of OR) in `node` as a balanced
/// tree: the same condition (both are associative, in SQL's three-valued
/// logic too), with depth log₂ of the chain's length instead of its length,
/// so a filter listing 500 alternatives is 10 levels deep, not 500.
pub fn balance_conditions(node: &mut impl VisitMut) {
    // After each node's children, so a chain's terms are balanced before it.
    let _ = visit_expressions_mut(node, |e| {
        if let SqlExpr::BinaryOp { op, .. } = e
            && matches!(op, BinaryOperator::And | BinaryOperator::Or)
        {
            let op = op.clone();
            let chain = std::mem::replace(e, SqlExpr::value(Value::Null));
            // The chain's terms, left to right, walked without recursion.
            let mut terms = Vec::new();
            let mut spine = vec![chain];
            while let Some(node) = spine.pop() {
                match node {
                    SqlExpr::BinaryOp { left, op: o, right } if o == op => {
                        spine.push(*right);
                        spine.push(*left);
                    }
                    other => terms.push(other),
                }
            }
            *e = balanced(terms, &op);
        }
        ControlFlow::<()>::Continue(())
    });
}

fn balanced(mut terms: Vec<SqlExpr>, op: &BinaryOperator) -> SqlExpr {
    if terms.len() == 1 {
        return terms.pop().expect("one term");
    }
    let right = terms.split_off(terms.len() / 2);
    SqlExpr::BinaryOp {
        left: Box::new(balanced(terms, op)),
        op: op.clone(),
        right: Box::new(balanced(right, op)),
    }
}

/// `expr` with integer `+`, `-` and `*` made exact: DataFusion's integer
/// arithmetic wraps silently (`60 * 4000000000000000000` gave
/// 192327041775828992, and an average of such days a wrong number with exit
/// 0). Each such operation is computed in a 38-digit decimal, whose
/// arithmetic is checked, and cast back to its integer type, which fails on
/// a value that does not fit; a value that fits is the same number, of the
/// same type, as before (division is left alone: it cannot overflow but
/// once, `MIN / -1`, and as a decimal it would no longer truncate).
pub fn exact_integer_arithmetic(
    expr: Expr,
    schema: &datafusion::common::DFSchema,
) -> datafusion::error::Result<Expr> {
    use datafusion::common::tree_node::Transformed;
    use datafusion::logical_expr::{BinaryExpr, ExprSchemable, Operator, cast};
    let wide = datafusion::arrow::datatypes::DataType::Decimal128(38, 0);
    expr.transform_up(|e| {
        let Expr::BinaryExpr(BinaryExpr { left, op, right }) = &e else {
            return Ok(Transformed::no(e));
        };
        if !matches!(op, Operator::Plus | Operator::Minus | Operator::Multiply) {
            return Ok(Transformed::no(e));
        }
        let ty = e.get_type(schema)?;
        if !ty.is_integer()
            || !left.get_type(schema)?.is_integer()
            || !right.get_type(schema)?.is_integer()
        {
            return Ok(Transformed::no(e));
        }
        let exact = datafusion::logical_expr::binary_expr(
            cast(left.as_ref().clone(), wide.clone()),
            *op,
            cast(right.as_ref().clone(), wide.clone()),
        );
        Ok(Transformed::yes(cast(exact, ty)))
    })
    .map(|t| t.data)
}

/// Why a planned expression may not be governed, or None when it is a
/// deterministic scalar expression of one row.
pub fn meaning_problem(expr: &Expr) -> Option<String> {
    let mut problem = None;
    // `apply` visits every node; it cannot fail here.
    let _ = expr.apply(|e| {
        problem = node_problem(e);
        Ok(if problem.is_some() {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    });
    problem
}

/// Functions declared immutable whose value still depends on where canon
/// runs.
const READS_THE_ENVIRONMENT: &[&str] = &["version"];

/// The value of an integer literal.
fn literal_integer(e: &Expr) -> Option<i64> {
    use datafusion::common::ScalarValue::*;
    match e {
        Expr::Literal(Int64(Some(n)), _) => Some(*n),
        Expr::Literal(Int32(Some(n)), _) => Some(i64::from(*n)),
        Expr::Literal(Int16(Some(n)), _) => Some(i64::from(*n)),
        Expr::Literal(Int8(Some(n)), _) => Some(i64::from(*n)),
        _ => None,
    }
}

/// Functions whose result is as long as their second argument says.
const SIZED_BY_ARGUMENT: &[&str] = &["lpad", "rpad", "repeat"];

/// The longest result such a function may be asked for.
const MAX_PADDED: i64 = 10_000;

fn node_problem(e: &Expr) -> Option<String> {
    const SAME: &str = "a governed expression must give the same value for the same row every time";
    const ONE_ROW: &str = "a governed expression reads only the fields of one row";
    Some(match e {
        // DataFusion declares `version()` immutable, but its value is the
        // engine's build and platform, which no fingerprint includes.
        Expr::ScalarFunction(f) if READS_THE_ENVIRONMENT.contains(&f.func.name()) => format!(
            "calls `{}`, whose value depends on the machine that runs it: {SAME}",
            f.func.name()
        ),
        // A result as long as an argument says: `lpad(name, 21474836)` made
        // 21 MB per row, past any memory pool (the pool counts operators'
        // buffers, not a function's output). A literal length up to
        // MAX_PADDED is allowed.
        Expr::ScalarFunction(f)
            if SIZED_BY_ARGUMENT.contains(&f.func.name())
                && !f
                    .args
                    .get(1)
                    .and_then(literal_integer)
                    .is_some_and(|n| (0..=MAX_PADDED).contains(&n)) =>
        {
            format!(
                "calls `{}` with a length that is not a number from 0 to {MAX_PADDED}: its result would be as long as the data says",
                f.func.name()
            )
        }
        Expr::ScalarFunction(f) => match f.func.signature().volatility {
            Volatility::Immutable => return None,
            Volatility::Stable => format!(
                "calls `{}`, whose value depends on when it runs: {SAME}",
                f.func.name()
            ),
            Volatility::Volatile => format!(
                "calls `{}`, whose value changes from call to call: {SAME}",
                f.func.name()
            ),
        },
        Expr::AggregateFunction(f) => format!(
            "uses the aggregate `{}`: {ONE_ROW} (aggregation belongs in the metric's `measure`)",
            f.func.name()
        ),
        Expr::WindowFunction(_) => format!("uses a window function: {ONE_ROW}"),
        Expr::ScalarSubquery(_)
        | Expr::Exists(_)
        | Expr::InSubquery(_)
        | Expr::SetComparison(_)
        | Expr::OuterReferenceColumn(..) => format!("reads a subquery: {ONE_ROW}"),
        Expr::Placeholder(_) => format!("has a placeholder: {SAME}"),
        Expr::ScalarVariable(..) => format!("reads a session variable: {SAME}"),
        Expr::Unnest(_) | Expr::GroupingSet(_) => format!("is not a scalar expression: {ONE_ROW}"),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_within_the_limits_passes() {
        assert_eq!(text_problem("is_won AND amount > 0", &GOVERNED), None);
    }

    #[test]
    fn bytes_are_checked_first() {
        // 10 + 40,000 bytes.
        let sql = format!("is_won AND{}", " + 1".repeat(10_000));
        let m = text_problem(&sql, &GOVERNED).unwrap();
        assert!(m.starts_with("the text is 40,010 bytes;"), "{m}");
    }

    #[test]
    fn tokens_bound_the_tree() {
        // `1` then 1,000 × `+1`: 2,001 tokens in 2,001 bytes.
        let sql = format!("1{}", "+1".repeat(1_000));
        let m = text_problem(&sql, &GOVERNED).unwrap();
        assert!(m.starts_with("the text has 2,001 tokens;"), "{m}");
        // One fewer term: 1,999 tokens.
        assert_eq!(
            text_problem(&format!("1{}", "+1".repeat(999)), &GOVERNED),
            None
        );
    }

    #[test]
    fn bracket_depth_counts_nesting_not_pairs() {
        let deep = format!("{}x{}", "(".repeat(33), ")".repeat(33));
        let m = text_problem(&deep, &GOVERNED).unwrap();
        assert!(
            m.starts_with("brackets (or data types) nest 33 deep;"),
            "{m}"
        );
        assert_eq!(
            text_problem(&format!("{}x{}", "(".repeat(32), ")".repeat(32)), &GOVERNED),
            None
        );
        // Data types nest as deep as the brackets they are written with.
        let m = text_problem(
            &format!("CAST(amount AS INT{}) IS NULL", "[]".repeat(40)),
            &GOVERNED,
        )
        .unwrap();
        assert!(
            m.starts_with("brackets (or data types) nest 41 deep;"),
            "{m}"
        );
        let nested = format!("CAST(x AS {}INT{})", "ARRAY<".repeat(40), ">".repeat(40));
        let m = text_problem(&nested, &GOVERNED).unwrap();
        assert!(
            m.starts_with("brackets (or data types) nest 41 deep;"),
            "{m}"
        );
        // A comparison is not a type: 100 of them are one level.
        let comparisons = vec!["a < b"; 100].join(" AND ");
        assert_eq!(text_problem(&comparisons, &GOVERNED), None);
        // 100 pairs side by side are one level.
        let wide = vec!["(x)"; 100].join(" + ");
        assert_eq!(text_problem(&wide, &GOVERNED), None);
    }
}
