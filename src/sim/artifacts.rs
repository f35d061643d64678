//! Jenkins artifacts as the real job writes them, generated for the simulators.
//!
//! `kubectl get … -o yaml` output with the echoed command line first, like the samples the
//! on-call team shared; the key and region are parameters so each scenario gets its own.

use base64::Engine as _;

/// `connector_getConnectorAPIKey.log` whose `slclient.toml` holds `key` as
/// `[Bluemix] iam_api_key` (or no `iam_api_key` at all when `key` is `None`).
pub fn api_key_log(key: Option<&str>) -> Vec<u8> {
    let mut toml = String::from(
        "[Bluemix]\niam_url = \"https://iam.cloud.ibm.com\"\niam_client_id = \"bx\"\niam_client_secret = \"bx\"\n",
    );
    if let Some(k) = key {
        toml.push_str(&format!("iam_api_key = \"{k}\"\n"));
    }
    toml.push_str("refresh_token = \"\"\npay_tier = \"paid\"\ncontainers_api_route = \"https://us-east.containers.cloud.ibm.com\"\n\n[Softlayer]\nsoftlayer_datacenter = \"wdc04\"\n");
    let b64 = base64::engine::general_purpose::STANDARD.encode(toml);
    format!(
        "+ kubectl get secret storage-secret-store -n kube-system -o yaml\napiVersion: v1\ndata:\n  slclient.toml: {b64}\nkind: Secret\nmetadata:\n  creationTimestamp: \"2026-10-02T08:11:52Z\"\n  name: storage-secret-store\n  namespace: kube-system\n  resourceVersion: \"81723\"\ntype: Opaque\n"
    )
    .into_bytes()
}

/// `connector_sl_configMap.log` with `region` (or no `region` key when `None`).
pub fn configmap_log(location: &str, region: Option<&str>) -> Vec<u8> {
    let region = region
        .map(|r| format!("  region: {r}\n"))
        .unwrap_or_default();
    format!(
        "+ kubectl get configmap satellite-link-config -n satellite-link -o yaml\napiVersion: v1\ndata:\n  location_id: {location}\n{region}  log_level: info\nkind: ConfigMap\nmetadata:\n  name: satellite-link-config\n  namespace: satellite-link\n"
    )
    .into_bytes()
}
