//! REFERENCE.md is the generated reference; this test keeps it current.
//! Regenerate with `CDC_CONFIG_BLESS=1 cargo test -p cdc-config --test reference`.

use std::path::Path;

#[test]
fn reference_md_is_up_to_date() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("REFERENCE.md");
    let generated = cdc_config::reference_markdown();
    if std::env::var_os("CDC_CONFIG_BLESS").is_some() {
        std::fs::write(&path, &generated).expect("write REFERENCE.md");
        return;
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == generated,
        "{} is stale; regenerate with CDC_CONFIG_BLESS=1 cargo test -p cdc-config --test reference",
        path.display()
    );
}

#[test]
fn reference_lists_every_key_and_env_var() {
    let text = cdc_config::reference_markdown();
    for s in cdc_config::settings::ALL {
        assert!(text.contains(&format!("| `{}` |", s.key)), "{} missing", s.key);
        assert!(text.contains(&format!("`{}`", s.env)), "{} missing", s.env);
    }
}
