//! `rhizo ui`: a one-time login link for the web UI the running node serves under `/ui/`.

use rhizo_node::api::web::LoginLinkResponse;

use crate::api_client::ApiClient;

pub(crate) async fn run(config: &rhizo_node::Config) -> anyhow::Result<()> {
    let api = ApiClient::connect(config)?;
    let link: LoginLinkResponse = api
        .post("/v1/ui/login-link", &serde_json::json!({}))
        .await?;
    println!("{}{}", api.base(), link.path);
    println!();
    println!(
        "Open this link in a browser on this machine within {} minutes; it works once, and \
         the browser then keeps a session cookie. Keep it secret until then.",
        link.expires_in_secs / 60
    );
    Ok(())
}
