//! `rhizo profile set | show`.

use anyhow::Context;
use rhizo_node::{
    Config,
    api::{SetProfileRequest, SetProfileResponse},
    messaging::ProfileView,
};

use crate::{api_client::ApiClient, cli::ProfileCommand, cmd::contacts::urlencode};

/// Largest avatar accepted (the signed record must fit one DHT packet).
const MAX_AVATAR_BYTES: u64 = rhizo_core::records::MAX_AVATAR_BYTES as u64;

pub(crate) async fn run(config: &Config, command: &ProfileCommand) -> anyhow::Result<()> {
    let api = ApiClient::connect(config)?;
    match command {
        ProfileCommand::Set {
            name,
            avatar,
            public,
            json,
        } => {
            let (avatar_base64, avatar_mime) = match avatar {
                None => (None, None),
                Some(path) => {
                    let size = std::fs::metadata(path)
                        .with_context(|| format!("cannot read {}", path.display()))?
                        .len();
                    anyhow::ensure!(
                        size <= MAX_AVATAR_BYTES,
                        "{} has {size} bytes; an avatar has at most {MAX_AVATAR_BYTES} bytes \
                         (scale it down, e.g. to 128×128)",
                        path.display()
                    );
                    let bytes = std::fs::read(path)
                        .with_context(|| format!("cannot read {}", path.display()))?;
                    let mime = image_type(&bytes).with_context(|| {
                        format!("{} is not a PNG, JPEG, GIF or WebP image", path.display())
                    })?;
                    (
                        Some(data_encoding::BASE64.encode(&bytes)),
                        Some(mime.to_string()),
                    )
                }
            };
            let r: SetProfileResponse = api
                .post(
                    "/v1/profile",
                    &SetProfileRequest {
                        name: name.clone(),
                        avatar_base64,
                        avatar_mime,
                        public: *public,
                    },
                )
                .await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                println!(
                    "profile version {} set: {}{}",
                    r.profile.version,
                    r.profile.name,
                    if r.profile.avatar_mime.is_some() {
                        " (with avatar)"
                    } else {
                        ""
                    }
                );
                if *public {
                    println!("published in the DHT on {} nodes", r.stored_on);
                } else {
                    println!("sent end-to-end to your contacts (not published: add --public)");
                }
            }
        }
        ProfileCommand::Show { who, json } => {
            let path = match who {
                None => "/v1/profile".to_string(),
                Some(who) => format!("/v1/profiles/{}", urlencode(who)),
            };
            let p: ProfileView = api.get(&path).await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&p)?);
            } else {
                println!("name:    {}", p.name);
                println!("uid:     {}", p.uid);
                println!("version: {}", p.version);
                if let (Some(mime), Some(b64)) = (&p.avatar_mime, &p.avatar_base64) {
                    println!("avatar:  {mime}, {} bytes", b64.len() / 4 * 3);
                }
                println!(
                    "source:  {}{}",
                    match p.source.as_str() {
                        "own" => "your own",
                        "contact" => "sent by the contact, end-to-end",
                        _ => "public, from the DHT (signature checked against the UID)",
                    },
                    if p.public { ", public" } else { "" }
                );
            }
        }
    }
    Ok(())
}

/// The image type from the file's first bytes.
fn image_type(bytes: &[u8]) -> Option<&'static str> {
    match bytes {
        [0x89, b'P', b'N', b'G', ..] => Some("image/png"),
        [0xFF, 0xD8, 0xFF, ..] => Some("image/jpeg"),
        [b'G', b'I', b'F', b'8', ..] => Some("image/gif"),
        [
            b'R',
            b'I',
            b'F',
            b'F',
            _,
            _,
            _,
            _,
            b'W',
            b'E',
            b'B',
            b'P',
            ..,
        ] => Some("image/webp"),
        _ => None,
    }
}
