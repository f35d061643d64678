//! placeholder
pub async fn run(_w: &mut dyn std::io::Write) -> anyhow::Result<()> { Ok(()) }
