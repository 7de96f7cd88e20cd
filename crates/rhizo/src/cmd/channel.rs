//! `rhizo channel create | join | leave | list | post | read`.

use rhizo_node::{
    Config,
    api::{CreateChannelRequest, JoinChannelRequest, TextBody},
    channels::{ChannelView, PostView},
};
use serde_json::Value;

use crate::{api_client::ApiClient, cli::ChannelCommand, cmd::contacts::urlencode};

pub(crate) async fn run(config: &Config, command: &ChannelCommand) -> anyhow::Result<()> {
    let api = ApiClient::connect(config)?;
    match command {
        ChannelCommand::Create { name, json } => {
            let c: ChannelView = api
                .post("/v1/channels", &CreateChannelRequest { name: name.clone() })
                .await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&c)?);
            } else {
                println!("channel {} created and joined", c.name);
                println!("id: {}", c.id);
                println!("others join with: rhizo channel join {}", c.id);
            }
        }
        ChannelCommand::Join { id, name } => {
            let c: ChannelView = api
                .post(
                    &format!("/v1/channels/{}/join", urlencode(id)),
                    &JoinChannelRequest { name: name.clone() },
                )
                .await?;
            println!("joined channel {} ({})", c.name, c.id);
        }
        ChannelCommand::Leave { channel } => {
            let _: Value = api
                .delete(&format!("/v1/channels/{}", urlencode(channel)))
                .await?;
            println!("left {channel}");
        }
        ChannelCommand::List(args) => {
            let list: Vec<ChannelView> = api.get("/v1/channels").await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else if list.is_empty() {
                println!("no channels: `rhizo channel create NAME` or `rhizo channel join ID`");
            } else {
                for c in list {
                    println!("{:<24} {}", c.name, c.id);
                }
            }
        }
        ChannelCommand::Post { channel, text } => {
            let p: PostView = api
                .post(
                    &format!("/v1/channels/{}/posts", urlencode(channel)),
                    &TextBody { text: text.clone() },
                )
                .await?;
            if p.published == Some(false) {
                println!(
                    "saved in {channel} ({}), but no peer of the channel is connected, so nobody \
                     got it; post again once others have joined",
                    &p.id[..16]
                );
            } else {
                println!("posted to {channel} ({})", &p.id[..16]);
            }
        }
        ChannelCommand::Read {
            channel,
            limit,
            json,
        } => {
            let posts: Vec<PostView> = api
                .get(&format!(
                    "/v1/channels/{}/posts?limit={limit}",
                    urlencode(channel)
                ))
                .await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&posts)?);
            } else {
                for p in posts {
                    let who = if p.own {
                        "me".to_string()
                    } else {
                        p.author[..15].to_string()
                    };
                    println!("{who}: {}", p.text);
                }
            }
        }
    }
    Ok(())
}
