//! `POST /v1/rules/check`: a segment rule parsed and type-checked against
//! the tenant's trait and event schemas before anyone saves it, with every
//! error's position, the rule's canonical text and a plain-English
//! explanation (`docs/rules.md`).

use axum::Extension;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use tessera_rules::Span;
use tessera_segments::rules::rule_schema;
use tessera_vault::TenantSettings;

use crate::error::{ApiError, Json};
use crate::tokens::Principal;
use crate::{AppState, blocking};

/// The longest rule text accepted, in characters.
const MAX_RULE_CHARS: usize = 10_000;

/// `POST /v1/rules/check`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CheckRule {
    /// The rule text, e.g. `count(purchase, last 90 days) >= 3`.
    rule: String,
}

/// One problem of a rule, where it is.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RuleProblem {
    /// 1-based line and column (in characters) where it starts.
    pub line: u32,
    pub column: u32,
    /// Byte offsets of the offending text.
    pub start: usize,
    pub end: usize,
    /// `line:column: what is wrong`.
    pub message: String,
}

/// What a rule refers to.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct RuleUses {
    pub traits: Vec<String>,
    pub events: Vec<String>,
    /// `event.property`.
    pub properties: Vec<String>,
    pub segments: Vec<String>,
}

/// The verdict on a rule.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RuleCheck {
    /// Parsed and every field known, of the right type.
    pub valid: bool,
    /// Every problem found: one parse error, or every type error.
    pub errors: Vec<RuleProblem>,
    /// The rule as Tessera writes it (when it parses).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub canonical: Option<String>,
    /// The rule in plain English (when it parses).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explanation: Option<String>,
    /// What it refers to (when it is valid).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uses: Option<RuleUses>,
}

fn problem(span: Span, message: String) -> RuleProblem {
    RuleProblem {
        line: span.line,
        column: span.column,
        start: span.start,
        end: span.end,
        message,
    }
}

/// Parses and checks `text` against `settings` and the tenant's
/// `segments`.
pub(crate) fn verdict(text: &str, settings: &TenantSettings, segments: Vec<String>) -> RuleCheck {
    let rule = match tessera_rules::parse(text) {
        Ok(rule) => rule,
        Err(error) => {
            return RuleCheck {
                valid: false,
                errors: vec![problem(error.span, error.to_string())],
                canonical: None,
                explanation: None,
                uses: None,
            };
        }
    };
    let canonical = Some(rule.to_string());
    let explanation = Some(rule.explain());
    match tessera_rules::check(&rule, &rule_schema(settings, segments)) {
        Ok(checked) => RuleCheck {
            valid: true,
            errors: Vec::new(),
            canonical,
            explanation,
            uses: Some(RuleUses {
                traits: checked.traits().iter().cloned().collect(),
                events: checked.events().iter().cloned().collect(),
                properties: checked
                    .properties()
                    .iter()
                    .map(|(event, property)| format!("{event}.{property}"))
                    .collect(),
                segments: checked.segments().iter().cloned().collect(),
            }),
        },
        Err(errors) => RuleCheck {
            valid: false,
            errors: errors
                .into_iter()
                .map(|e| problem(e.span, e.to_string()))
                .collect(),
            canonical,
            explanation,
            uses: None,
        },
    }
}

/// `POST /v1/rules/check`: parses a segment rule and checks it against the
/// tenant's trait and event schemas (event types and properties must be
/// declared in the event schema to be used). Answers 200 whether the rule
/// is valid or not: `valid` and `errors` say.
#[utoipa::path(post, path = "/v1/rules/check", tag = "tenant",
    request_body = CheckRule,
    responses((status = 200, description = "The verdict, with every problem's position.", body = RuleCheck)))]
pub(crate) async fn check(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Json(body): Json<CheckRule>,
) -> Result<Json<RuleCheck>, ApiError> {
    if body.rule.chars().count() > MAX_RULE_CHARS {
        return Err(ApiError::unprocessable(
            "rule_too_long",
            format!("a rule is at most {MAX_RULE_CHARS} characters"),
        )
        .with_field("rule", format!("at most {MAX_RULE_CHARS} characters")));
    }
    let (settings, segments) = blocking(move || {
        let settings = state.vault.settings(&principal.tenant)?;
        let segments = match &state.segments {
            Some(segments) => segments
                .list(&principal.tenant)?
                .into_iter()
                .map(|s| s.name)
                .collect(),
            None => Vec::new(),
        };
        Ok((settings, segments))
    })
    .await?;
    Ok(Json(verdict(&body.rule, &settings, segments)))
}

#[cfg(test)]
mod tests {
    use super::verdict;
    use tessera_vault::{EventSpec, PropertySpec, TenantSettings, TraitType};

    fn settings() -> TenantSettings {
        let mut settings = TenantSettings::default();
        let mut purchase = EventSpec::default();
        purchase
            .properties
            .insert("amount".into(), PropertySpec::new(TraitType::Number));
        purchase
            .properties
            .insert("store".into(), PropertySpec::new(TraitType::String));
        settings.events.insert("purchase".into(), purchase);
        settings
    }

    #[test]
    fn a_valid_rule_is_explained_and_says_what_it_uses() {
        let v = verdict(
            "sum(purchase.amount, last 30 days) > 500 and trait.city = \"Oslo\"",
            &settings(),
            Vec::new(),
        );
        assert!(v.valid, "{v:?}");
        let uses = v.uses.unwrap();
        assert_eq!(uses.traits, ["city"]);
        assert_eq!(uses.events, ["purchase"]);
        assert_eq!(uses.properties, ["purchase.amount"]);
        assert!(v.explanation.unwrap().contains("purchase"));
    }

    #[test]
    fn errors_name_the_position_and_every_type_error_is_reported() {
        let v = verdict("count(purchase) >= and", &settings(), Vec::new());
        assert!(!v.valid);
        assert_eq!(v.errors.len(), 1);
        assert_eq!((v.errors[0].line, v.errors[0].column), (1, 20));
        assert!(v.errors[0].message.starts_with("1:20: expected"), "{v:?}");

        let v = verdict(
            "sum(purchase.store) > 1 and trait.nope = 1 and count(refund) > 0",
            &settings(),
            Vec::new(),
        );
        assert!(!v.valid);
        let messages: Vec<&str> = v.errors.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(messages.len(), 3, "{messages:?}");
        assert!(messages[0].contains("numeric property"), "{messages:?}");
        assert!(
            messages[1].contains("unknown trait \"nope\""),
            "{messages:?}"
        );
        assert!(
            messages[2].contains("unknown event type \"refund\""),
            "{messages:?}"
        );
        assert!(v.canonical.is_some(), "it parsed");
    }

    #[test]
    fn a_rule_may_refer_to_the_tenants_segments_only() {
        let rule = "in segment \"vip\" and not in segment \"staff\"";
        let v = verdict(rule, &settings(), vec!["vip".into(), "staff".into()]);
        assert!(v.valid, "{v:?}");
        assert_eq!(v.uses.unwrap().segments, ["staff", "vip"]);
        let v = verdict(rule, &settings(), vec!["vip".into()]);
        assert!(!v.valid);
        assert!(
            v.errors[0].message.contains("unknown segment \"staff\""),
            "{v:?}"
        );
    }
}
