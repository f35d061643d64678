//! The audit log as a text table: what `linkbot audit` prints and the demo shows at its end.
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
