//! The audit log as a text table: what `linkbot audit` prints and the demo shows at its end;
//! and one incident's timeline (`linkbot audit --location … --timeline`).
//!
//! It lives apart from `cli.rs` so the demo can use it without importing the CLI (which runs the
//! demo): no cycle. Pure formatting of store values; it must not query the store or print.

/// The audit log as a table, newest first.
pub fn render_audit(entries: &[crate::store::AuditEntry]) -> String {
    if entries.is_empty() {
        return "No audit entries.\n".into();
    }
    let mut out = String::from("TIME (UTC)           KIND        LOCATION               ENV    WHO          WHERE        VERDICT           TARGET / LINK\n");
    for e in entries {
        let kind = e.kind.as_str();
        let tail = [e.target.as_deref(), e.link.as_deref(), e.detail.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        out.push_str(&format!(
            "{:<20} {:<11} {:<22} {:<6} {:<12} {:<12} {:<17} {}\n",
            e.at.format("%Y-%m-%d %H:%M:%S"),
            kind,
            e.location,
            e.environment,
            e.actor.as_deref().unwrap_or("-"),
            e.channel.as_deref().unwrap_or("-"),
            e.verdict.as_deref().unwrap_or("-"),
            tail
        ));
    }
    out
}

/// One incident's timeline as text: a header line, then one event per line with the time since
/// the firing and since the previous event.
pub fn render_timeline(t: &crate::incident::Timeline) -> String {
    let i = &t.incident;
    let state = match i.resolved_at {
        Some(at) => format!(
            "resolved at {} after {}",
            at.format("%Y-%m-%d %H:%M:%S"),
            ms((at - i.fired_at).num_milliseconds())
        ),
        None => "open".to_string(),
    };
    let mut out = format!(
        "Incident {} — {} ({}), fired {} UTC, {state}; diagnosis {}\n",
        i.id,
        i.key.location,
        i.key.environment,
        i.fired_at.format("%Y-%m-%d %H:%M:%S"),
        i.verdict.as_deref().unwrap_or("-"),
    );
    out.push_str(
        "TIME (UTC)           +FIRED    +PREV     EVENT              WHO          DETAIL\n",
    );
    for e in &t.events {
        out.push_str(&format!(
            "{:<20} {:<9} {:<9} {:<18} {:<12} {}\n",
            e.event.at.format("%Y-%m-%d %H:%M:%S"),
            ms(e.since_fired_ms),
            ms(e.since_previous_ms),
            e.event.kind,
            e.event.actor.as_deref().unwrap_or("-"),
            e.event.detail.as_deref().unwrap_or("")
        ));
    }
    out
}

/// Milliseconds as `4m05s` (the one duration formatter); negative ones as 0s.
fn ms(ms: i64) -> String {
    crate::format::human(std::time::Duration::from_millis(
        u64::try_from(ms).unwrap_or(0),
    ))
}
