//! The extract contract's tables (shared/spec/extracts.md), column for column,
//! and how each is filled from the simulated world.

use std::fmt::Write;

use super::sim::Cal;
use super::time::MINUTE_US;
use super::world::*;
use super::write::Ty::*;
use super::write::*;

pub const CRM_ACCOUNT: TableDef = TableDef {
    system: "crm",
    table: "account",
    columns: &[
        ("id", Str, false),
        ("name", Str, false),
        ("type", Str, false),
        ("parent_id", Str, true),
        ("master_record_id", Str, true),
        ("owner_id", Str, false),
        ("industry", Str, true),
        ("billing_country", Str, true),
        ("website", Str, true),
        ("created_date", Ts, false),
        ("is_deleted", Bool, false),
    ],
};

pub const CRM_USER: TableDef = TableDef {
    system: "crm",
    table: "user",
    columns: &[
        ("id", Str, false),
        ("name", Str, false),
        ("email", Str, false),
        ("department", Str, true),
        ("is_active", Bool, false),
    ],
};

pub const CRM_OPPORTUNITY: TableDef = TableDef {
    system: "crm",
    table: "opportunity",
    columns: &[
        ("id", Str, false),
        ("account_id", Str, false),
        ("owner_id", Str, false),
        ("name", Str, false),
        ("type", Str, false),
        ("stage_name", Str, false),
        ("forecast_category", Str, false),
        ("probability", Double, false),
        ("amount", Money, true),
        ("currency_iso_code", Str, false),
        ("close_date", Date, false),
        ("created_date", Ts, false),
        ("is_closed", Bool, false),
        ("is_won", Bool, false),
        ("is_deleted", Bool, false),
        ("lead_source", Str, true),
    ],
};

pub const CRM_OPPORTUNITY_HISTORY: TableDef = TableDef {
    system: "crm",
    table: "opportunity_history",
    columns: &[
        ("id", Str, false),
        ("opportunity_id", Str, false),
        ("created_date", Ts, false),
        ("stage_name", Str, false),
        ("amount", Money, true),
        ("close_date", Date, false),
        ("probability", Double, false),
        ("forecast_category", Str, false),
        ("is_deleted", Bool, false),
    ],
};

pub const CRM_DATED_CONVERSION_RATE: TableDef = TableDef {
    system: "crm",
    table: "dated_conversion_rate",
    columns: &[
        ("iso_code", Str, false),
        ("conversion_rate", Rate, false),
        ("start_date", Date, false),
        ("next_start_date", Date, false),
    ],
};

pub const MARKETING_CONTACT: TableDef = TableDef {
    system: "marketing",
    table: "contact",
    columns: &[
        ("id", Int, false),
        ("email", Str, true),
        ("created_at", Ts, false),
        ("lifecyclestage", Str, true),
        ("is_deleted", Bool, false),
    ],
};

pub const MARKETING_CONTACT_MERGE_AUDIT: TableDef = TableDef {
    system: "marketing",
    table: "contact_merge_audit",
    columns: &[
        ("canonical_vid", Int, false),
        ("vid_to_merge", Int, false),
        ("timestamp", Ts, false),
    ],
};

pub const MARKETING_LIFECYCLE_STAGE_HISTORY: TableDef = TableDef {
    system: "marketing",
    table: "lifecycle_stage_history",
    columns: &[
        ("contact_id", Int, false),
        ("value", Str, false),
        ("timestamp", Ts, false),
        ("source", Str, true),
    ],
};

pub const BILLING_ACCOUNT: TableDef = TableDef {
    system: "billing",
    table: "account",
    columns: &[
        ("id", Str, false),
        ("account_number", Str, false),
        ("name", Str, false),
        ("crm_id", Str, true),
        ("currency", Str, false),
        ("status", Str, false),
        ("created_date", Ts, false),
        ("is_deleted", Bool, false),
    ],
};

pub const BILLING_SUBSCRIPTION: TableDef = TableDef {
    system: "billing",
    table: "subscription",
    columns: &[
        ("id", Str, false),
        ("account_id", Str, false),
        ("name", Str, false),
        ("version", Int, false),
        ("is_latest_version", Bool, false),
        ("original_id", Str, false),
        ("status", Str, false),
        ("subscription_start_date", Date, false),
        ("subscription_end_date", Date, true),
        ("term_start_date", Date, false),
        ("term_end_date", Date, true),
        ("cancelled_date", Date, true),
        ("crm_opportunity_id", Str, true),
        ("is_deleted", Bool, false),
    ],
};

pub const BILLING_RATE_PLAN_CHARGE: TableDef = TableDef {
    system: "billing",
    table: "rate_plan_charge",
    columns: &[
        ("id", Str, false),
        ("subscription_id", Str, false),
        ("name", Str, false),
        ("charge_type", Str, false),
        ("effective_start_date", Date, false),
        ("effective_end_date", Date, true),
        ("mrr", Money, false),
        ("tcv", Money, false),
        ("transaction_currency", Str, false),
        ("is_deleted", Bool, false),
    ],
};

pub const FINANCE_ACCOUNTING_PERIOD: TableDef = TableDef {
    system: "finance",
    table: "accounting_period",
    columns: &[
        ("id", Int, false),
        ("period_name", Str, false),
        ("start_date", Date, false),
        ("end_date", Date, false),
        ("fiscal_year", Int, false),
        ("fiscal_quarter", Int, false),
        ("is_closed", Bool, false),
    ],
};

pub const FINANCE_REVENUE_PLAN_LINE: TableDef = TableDef {
    system: "finance",
    table: "revenue_plan_line",
    columns: &[
        ("id", Str, false),
        ("revenue_plan_id", Str, false),
        ("accounting_period_id", Int, false),
        ("amount", Money, false),
        ("transaction_amount", Money, false),
        ("transaction_currency", Str, false),
        ("item_type", Str, false),
        ("source_opportunity_id", Str, true),
        ("source_subscription_id", Str, true),
        ("is_recognized", Bool, false),
        ("is_deleted", Bool, false),
    ],
};

pub const SUPPORT_ORGANIZATION: TableDef = TableDef {
    system: "support",
    table: "organization",
    columns: &[
        ("id", Int, false),
        ("name", Str, false),
        ("external_id", Str, true),
        ("created_at", Ts, false),
        ("is_deleted", Bool, false),
    ],
};

pub const SUPPORT_TICKET: TableDef = TableDef {
    system: "support",
    table: "ticket",
    columns: &[
        ("id", Int, false),
        ("organization_id", Int, true),
        ("requester_id", Int, false),
        ("status", Str, false),
        ("priority", Str, true),
        ("created_at", Ts, false),
        ("solved_at", Ts, true),
        ("is_deleted", Bool, false),
    ],
};

pub const CS_COMPANY_HEALTH: TableDef = TableDef {
    system: "cs",
    table: "company_health",
    columns: &[
        ("sfdc_account_id", Str, true),
        ("score", Int, false),
        ("status", Str, false),
        ("snapshot_date", Date, false),
    ],
};

/// Every table of the contract, in the order they are reported.
pub const ALL: [&TableDef; 16] = [
    &CRM_ACCOUNT,
    &CRM_USER,
    &CRM_OPPORTUNITY,
    &CRM_OPPORTUNITY_HISTORY,
    &CRM_DATED_CONVERSION_RATE,
    &MARKETING_CONTACT,
    &MARKETING_CONTACT_MERGE_AUDIT,
    &MARKETING_LIFECYCLE_STAGE_HISTORY,
    &BILLING_ACCOUNT,
    &BILLING_SUBSCRIPTION,
    &BILLING_RATE_PLAN_CHARGE,
    &FINANCE_ACCOUNTING_PERIOD,
    &FINANCE_REVENUE_PLAN_LINE,
    &SUPPORT_ORGANIZATION,
    &SUPPORT_TICKET,
    &CS_COMPANY_HEALTH,
];

/// Row indexes `0..n` sorted by a key (ties keep index order).
fn sorted_by<K: Ord>(n: usize, key: impl Fn(usize) -> K) -> Vec<u32> {
    let mut idx: Vec<u32> = (0..n as u32).collect();
    idx.sort_by_key(|&i| key(i as usize));
    idx
}

fn identity(n: usize) -> Vec<u32> {
    (0..n as u32).collect()
}

/// How long before the extract each system's connector last wrote (minutes).
fn lag_minutes(system: &str) -> i64 {
    match system {
        "crm" => 12,
        "marketing" => 95,
        "billing" => 41,
        "finance" => 310,
        "support" => 23,
        _ => 200,
    }
}

fn sf(out: &mut String, prefix: &str, idx: u32) {
    sf_id(out, prefix, idx as u64 + 1);
}

/// The writing jobs for every table, in the order of [`ALL`].
pub fn jobs<'a>(w: &'a World, cal: &Cal) -> Vec<Job<'a>> {
    let synced = |def: &TableDef| cal.extract_ts - lag_minutes(def.system) * MINUTE_US;
    let mut jobs: Vec<Job<'a>> = Vec::with_capacity(ALL.len());
    let mut push = |def: &'static TableDef, order: OrderFn<'a>, build: BuildFn<'a>| {
        jobs.push(Job {
            def,
            order,
            build,
            synced_max: synced(def),
        })
    };

    // crm/account, sorted by created_date
    push(
        &CRM_ACCOUNT,
        Box::new(move || sorted_by(w.accounts.len(), |i| w.accounts[i].created)),
        Box::new(move |ix| {
            let a = &w.accounts;
            vec![
                utf8(ix, |i, s| sf(s, ACCOUNT_PREFIX, i as u32)),
                utf8(ix, |i, s| s.push_str(&a[i].name)),
                utf8(ix, |i, s| s.push_str(a[i].typ)),
                utf8_opt(ix, |i, s| {
                    a[i].parent.map(|p| sf(s, ACCOUNT_PREFIX, p)).is_some()
                }),
                utf8_opt(ix, |i, s| {
                    a[i].master.map(|p| sf(s, ACCOUNT_PREFIX, p)).is_some()
                }),
                utf8(ix, |i, s| sf(s, USER_PREFIX, a[i].owner)),
                utf8_opt(ix, |i, s| a[i].industry.map(|v| s.push_str(v)).is_some()),
                utf8_opt(ix, |i, s| a[i].country.map(|v| s.push_str(v)).is_some()),
                utf8_opt(ix, |i, s| {
                    a[i].website.as_ref().map(|v| s.push_str(v)).is_some()
                }),
                ts(ix, |i| a[i].created),
                boolean(ix, |i| a[i].deleted),
            ]
        }),
    );

    // crm/user, by id
    push(
        &CRM_USER,
        Box::new(move || identity(w.users.len())),
        Box::new(move |ix| {
            let u = &w.users;
            vec![
                utf8(ix, |i, s| sf(s, USER_PREFIX, i as u32)),
                utf8(ix, |i, s| s.push_str(&u[i].name)),
                utf8(ix, |i, s| s.push_str(&u[i].email)),
                utf8_opt(ix, |i, s| u[i].department.map(|v| s.push_str(v)).is_some()),
                boolean(ix, |i| u[i].active),
            ]
        }),
    );

    // crm/opportunity, by close_date
    push(
        &CRM_OPPORTUNITY,
        Box::new(move || sorted_by(w.opps.len(), |i| w.opps[i].close)),
        Box::new(move |ix| {
            let o = &w.opps;
            vec![
                utf8(ix, |i, s| sf(s, OPP_PREFIX, i as u32)),
                utf8(ix, |i, s| sf(s, ACCOUNT_PREFIX, o[i].account)),
                utf8(ix, |i, s| sf(s, USER_PREFIX, o[i].owner)),
                utf8(ix, |i, s| s.push_str(&o[i].name)),
                utf8(ix, |i, s| s.push_str(DEAL_TYPES[o[i].typ as usize])),
                utf8(ix, |i, s| s.push_str(STAGES[o[i].stage as usize])),
                utf8(ix, |i, s| s.push_str(FORECAST[o[i].forecast as usize])),
                float64(ix, |i| o[i].probability),
                money_opt(ix, |i| o[i].amount),
                utf8(ix, |i, s| s.push_str(CURRENCIES[o[i].currency as usize])),
                date32(ix, |i| o[i].close),
                ts(ix, |i| o[i].created),
                boolean(ix, |i| o[i].stage >= WON),
                boolean(ix, |i| o[i].stage == WON),
                boolean(ix, |i| o[i].deleted),
                utf8_opt(ix, |i, s| o[i].lead_source.map(|v| s.push_str(v)).is_some()),
            ]
        }),
    );

    // crm/opportunity_history, by created_date
    push(
        &CRM_OPPORTUNITY_HISTORY,
        Box::new(move || sorted_by(w.hist.len(), |i| w.hist[i].ts)),
        Box::new(move |ix| {
            let h = &w.hist;
            vec![
                utf8(ix, |i, s| sf_id(s, HISTORY_PREFIX, h[i].id as u64)),
                utf8(ix, |i, s| sf(s, OPP_PREFIX, h[i].opp)),
                ts(ix, |i| h[i].ts),
                utf8(ix, |i, s| s.push_str(STAGES[h[i].stage as usize])),
                money_opt(ix, |i| h[i].amount),
                date32(ix, |i| h[i].close),
                float64(ix, |i| h[i].probability),
                utf8(ix, |i, s| s.push_str(FORECAST[h[i].forecast as usize])),
                boolean(ix, |i| w.opps[h[i].opp as usize].deleted),
            ]
        }),
    );

    // crm/dated_conversion_rate, by start_date (then currency)
    push(
        &CRM_DATED_CONVERSION_RATE,
        Box::new(move || sorted_by(w.rates.len(), |i| (w.rates[i].start, w.rates[i].currency))),
        Box::new(move |ix| {
            let r = &w.rates;
            vec![
                utf8(ix, |i, s| s.push_str(CURRENCIES[r[i].currency as usize])),
                rate(ix, |i| r[i].rate),
                date32(ix, |i| r[i].start),
                date32(ix, |i| r[i].next),
            ]
        }),
    );

    // marketing/contact, by created_at
    push(
        &MARKETING_CONTACT,
        Box::new(move || {
            sorted_by(w.contacts.len(), |i| {
                (w.contacts[i].created, w.contacts[i].id)
            })
        }),
        Box::new(move |ix| {
            let c = &w.contacts;
            vec![
                int64(ix, |i| c[i].id),
                utf8_opt(ix, |i, s| {
                    c[i].email.as_ref().map(|v| s.push_str(v)).is_some()
                }),
                ts(ix, |i| c[i].created),
                utf8_opt(ix, |i, s| {
                    c[i].stage
                        .map(|v| s.push_str(LIFECYCLE[v as usize]))
                        .is_some()
                }),
                boolean(ix, |i| c[i].deleted),
            ]
        }),
    );

    // marketing/contact_merge_audit, by timestamp
    push(
        &MARKETING_CONTACT_MERGE_AUDIT,
        Box::new(move || sorted_by(w.merges.len(), |i| w.merges[i].ts)),
        Box::new(move |ix| {
            let m = &w.merges;
            vec![
                int64(ix, |i| m[i].canonical),
                int64(ix, |i| m[i].merged),
                ts(ix, |i| m[i].ts),
            ]
        }),
    );

    // marketing/lifecycle_stage_history, by timestamp
    push(
        &MARKETING_LIFECYCLE_STAGE_HISTORY,
        Box::new(move || sorted_by(w.life.len(), |i| w.life[i].ts)),
        Box::new(move |ix| {
            let l = &w.life;
            vec![
                int64(ix, |i| l[i].contact),
                utf8(ix, |i, s| s.push_str(LIFECYCLE[l[i].value as usize])),
                ts(ix, |i| l[i].ts),
                utf8_opt(ix, |i, s| {
                    l[i].source
                        .map(|v| s.push_str(LIFECYCLE_SOURCES[v as usize]))
                        .is_some()
                }),
            ]
        }),
    );

    // billing/account, by created_date
    push(
        &BILLING_ACCOUNT,
        Box::new(move || sorted_by(w.bill_accounts.len(), |i| w.bill_accounts[i].created)),
        Box::new(move |ix| {
            let b = &w.bill_accounts;
            vec![
                utf8(ix, |i, s| zuora_id(s, Z_ACCOUNT, i as u64 + 1)),
                utf8(ix, |i, s| {
                    let _ = write!(s, "A{:08}", i + 1);
                }),
                utf8(ix, |i, s| s.push_str(&b[i].name)),
                utf8_opt(ix, |i, s| b[i].crm.map(|r| crm_ref_id(s, r)).is_some()),
                utf8(ix, |i, s| s.push_str(CURRENCIES[b[i].currency as usize])),
                utf8(ix, |i, s| {
                    s.push_str(if b[i].active { "Active" } else { "Cancelled" })
                }),
                ts(ix, |i| b[i].created),
                boolean(ix, |i| b[i].deleted),
            ]
        }),
    );

    // billing/subscription, by subscription_start_date
    push(
        &BILLING_SUBSCRIPTION,
        Box::new(move || sorted_by(w.subs.len(), |i| w.subs[i].start)),
        Box::new(move |ix| {
            let v = &w.subs;
            vec![
                utf8(ix, |i, s| zuora_id(s, Z_SUBSCRIPTION, v[i].id as u64)),
                utf8(ix, |i, s| zuora_id(s, Z_ACCOUNT, v[i].bill as u64 + 1)),
                utf8(ix, |i, s| {
                    let _ = write!(s, "A-S{:08}", v[i].number);
                }),
                int64(ix, |i| v[i].version as i64),
                boolean(ix, |i| v[i].latest),
                utf8(ix, |i, s| zuora_id(s, Z_SUBSCRIPTION, v[i].original as u64)),
                utf8(ix, |i, s| s.push_str(SUB_STATUS[v[i].status as usize])),
                date32(ix, |i| v[i].start),
                date32_opt(ix, |i| v[i].end),
                date32(ix, |i| v[i].term_start),
                date32_opt(ix, |i| v[i].term_end),
                date32_opt(ix, |i| v[i].cancelled),
                utf8_opt(ix, |i, s| v[i].opp.map(|o| sf(s, OPP_PREFIX, o)).is_some()),
                boolean(ix, |i| v[i].deleted),
            ]
        }),
    );

    // billing/rate_plan_charge, by effective_start_date
    push(
        &BILLING_RATE_PLAN_CHARGE,
        Box::new(move || sorted_by(w.charges.len(), |i| w.charges[i].start)),
        Box::new(move |ix| {
            let c = &w.charges;
            vec![
                utf8(ix, |i, s| zuora_id(s, Z_CHARGE, c[i].id as u64)),
                utf8(ix, |i, s| zuora_id(s, Z_SUBSCRIPTION, c[i].sub as u64)),
                utf8(ix, |i, s| s.push_str(c[i].name)),
                utf8(ix, |i, s| {
                    s.push_str(CHARGE_TYPES[c[i].charge_type as usize])
                }),
                date32(ix, |i| c[i].start),
                date32_opt(ix, |i| c[i].end),
                money(ix, |i| c[i].mrr),
                money(ix, |i| c[i].tcv),
                utf8(ix, |i, s| s.push_str(CURRENCIES[c[i].currency as usize])),
                boolean(ix, |i| c[i].deleted),
            ]
        }),
    );

    // finance/accounting_period, by start_date (= id order)
    push(
        &FINANCE_ACCOUNTING_PERIOD,
        Box::new(move || identity(w.periods.len())),
        Box::new(move |ix| {
            let p = &w.periods;
            vec![
                int64(ix, |i| p[i].id),
                utf8(ix, |i, s| s.push_str(&p[i].name)),
                date32(ix, |i| p[i].start),
                date32(ix, |i| p[i].end),
                int64(ix, |i| p[i].fiscal_year),
                int64(ix, |i| p[i].fiscal_quarter),
                boolean(ix, |i| p[i].closed),
            ]
        }),
    );

    // finance/revenue_plan_line, by accounting_period_id
    push(
        &FINANCE_REVENUE_PLAN_LINE,
        Box::new(move || sorted_by(w.lines.len(), |i| w.lines[i].period)),
        Box::new(move |ix| {
            let l = &w.lines;
            vec![
                utf8(ix, |i, s| {
                    let _ = write!(s, "RPL{:08}", l[i].id);
                }),
                utf8(ix, |i, s| {
                    let _ = write!(s, "RP{:07}", l[i].plan);
                }),
                int64(ix, |i| l[i].period),
                money(ix, |i| l[i].amount),
                money(ix, |i| l[i].transaction_amount),
                utf8(ix, |i, s| s.push_str(CURRENCIES[l[i].currency as usize])),
                utf8(ix, |i, s| s.push_str(ITEM_TYPES[l[i].item as usize])),
                utf8_opt(ix, |i, s| l[i].opp.map(|o| opp_ref_id(s, o)).is_some()),
                utf8_opt(ix, |i, s| {
                    l[i].sub
                        .map(|o| zuora_id(s, Z_SUBSCRIPTION, o as u64))
                        .is_some()
                }),
                boolean(ix, |i| l[i].recognized),
                boolean(ix, |i| l[i].deleted),
            ]
        }),
    );

    // support/organization, by created_at
    push(
        &SUPPORT_ORGANIZATION,
        Box::new(move || sorted_by(w.orgs.len(), |i| (w.orgs[i].created, w.orgs[i].id))),
        Box::new(move |ix| {
            let o = &w.orgs;
            vec![
                int64(ix, |i| o[i].id),
                utf8(ix, |i, s| s.push_str(&o[i].name)),
                utf8_opt(ix, |i, s| o[i].external.map(|r| crm_ref_id(s, r)).is_some()),
                ts(ix, |i| o[i].created),
                boolean(ix, |i| o[i].deleted),
            ]
        }),
    );

    // support/ticket, by created_at
    push(
        &SUPPORT_TICKET,
        Box::new(move || sorted_by(w.tickets.len(), |i| (w.tickets[i].created, w.tickets[i].id))),
        Box::new(move |ix| {
            let t = &w.tickets;
            vec![
                int64(ix, |i| t[i].id),
                int64_opt(ix, |i| t[i].org),
                int64(ix, |i| t[i].requester),
                utf8(ix, |i, s| s.push_str(TICKET_STATUS[t[i].status as usize])),
                utf8_opt(ix, |i, s| {
                    t[i].priority
                        .map(|p| s.push_str(PRIORITIES[p as usize]))
                        .is_some()
                }),
                ts(ix, |i| t[i].created),
                ts_opt(ix, |i| t[i].solved),
                boolean(ix, |i| t[i].deleted),
            ]
        }),
    );

    // cs/company_health, by snapshot_date
    push(
        &CS_COMPANY_HEALTH,
        Box::new(move || sorted_by(w.health.len(), |i| w.health[i].date)),
        Box::new(move |ix| {
            let h = &w.health;
            vec![
                utf8_opt(ix, |i, s| h[i].account.map(|r| crm_ref_id(s, r)).is_some()),
                int64(ix, |i| h[i].score),
                utf8(ix, |i, s| s.push_str(HEALTH_STATUS[h[i].status as usize])),
                date32(ix, |i| h[i].date),
            ]
        }),
    );

    jobs
}
