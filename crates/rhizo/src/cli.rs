//! The command-line surface (clap).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use rhizo_node::ConfigLayer;

mod agents;
mod manage;
mod ops;
pub(crate) use agents::*;
pub(crate) use manage::*;
pub(crate) use ops::*;

/// rhizo: decentralized, end-to-end encrypted messaging for people and agents.
#[derive(Debug, Parser)]
#[command(name = "rhizo", version, propagate_version = true, after_help = ENV_HELP)]
pub(crate) struct Cli {
    /// Data directory (keys, database, API token) [env: RHIZO_DATA_DIR] [default: ~/.local/share/rhizo]
    #[arg(long, global = true, value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// Config file [env: RHIZO_CONFIG] [default: ~/.config/rhizo/config.toml]
    #[arg(long, global = true, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// Local API address for `rhizo run`, loopback only [env: RHIZO_API] [default:
    /// 127.0.0.1:4748]; other commands find the running node only through the address it wrote
    /// to <data_dir>/api.addr (the token is never sent anywhere else)
    #[arg(long, global = true, value_name = "ADDR")]
    pub(crate) api: Option<String>,
    /// More log output (-v, -vv); RUST_LOG overrides
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,
    /// Only errors in the log
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub(crate) quiet: bool,
    #[command(subcommand)]
    pub(crate) command: Command,
}

const ENV_HELP: &str = "Environment: RHIZO_DATA_DIR, RHIZO_CONFIG, RHIZO_LISTEN, RHIZO_BOOTSTRAP, \
RHIZO_MDNS, RHIZO_API, RHIZO_ANNOUNCE, RHIZO_REKEY_MESSAGES, RHIZO_REKEY_INTERVAL_SECS, \
RHIZO_MAILBOX_TTL_DAYS, RHIZO_MAILBOX_POLL_SECS, RHIZO_MAILBOX_REPLICATE_SECS, \
RHIZO_MAILBOX_MAX_PER_SENDER, RHIZO_MAX_INBOUND, RHIZO_MAX_OUTBOUND, RHIZO_MAX_PER_IP, RHIZO_TRUSTED, \
RHIZO_BANNED_PEERS, RHIZO_BANNED_CIDRS, RHIZO_GEOIP_DB, RHIZO_BLOCKED_COUNTRIES, RHIZO_RELAY, RHIZO_RELAYS, \
RHIZO_UPNP, RHIZO_PEX_INTERVAL_SECS, RHIZO_AGENT_ENABLED, RHIZO_AGENT_HEARTBEAT_SECS, \
RHIZO_AGENT_MAX_QUEUE, RHIZO_AGENT_ACCEPT_TASKS_FROM, RHIZO_AGENT_WAKE_COMMAND, RHIZO_AGENT_A2A_URL, \
RHIZO_MAILBOX_MAX_TOTAL_MIB, RHIZO_MAILBOX_MAX_TOTAL_ENTRIES, RHIZO_FILES_MAX_MIB, \
RHIZO_FILES_AUTO_DOWNLOAD_MIB, RHIZO_FILES_MAX_STORAGE_MIB, RHIZO_HIDE_PRESENCE, \
RHIZO_BATCH_FRAMES, RHIZO_DEVICES_HISTORY_DAYS, RUST_LOG.\n\
Precedence: flag > environment > config file > default.";

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Create this user's root key and this device's key (never overwrites existing keys)
    Init(InitArgs),
    /// Show this node's UID, fingerprint, device PeerId and listen addresses
    #[command(alias = "whoami")]
    Id(JsonArg),
    /// Run the node in the foreground (Ctrl-C to stop)
    Run(NodeArgs),
    /// Show the running node's state
    Status(JsonArg),
    /// List the running node's peers
    Peers(JsonArg),
    /// Inspect the configuration
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print a contact ticket others can add you with
    Invite(InviteArgs),
    /// Manage contacts
    #[command(subcommand)]
    Contacts(ContactsCommand),
    /// Message requests: messages from people who are not your contacts (list, accept,
    /// decline, block)
    Requests(RequestsArgs),
    /// Send a message to a contact or a group (end-to-end encrypted)
    Send(SendArgs),
    /// Show the history with a contact or a group, with delivery states; `messages delete ID`
    /// deletes one (`--for-everyone`: also on the others' devices, best effort)
    Messages(MessagesArgs),
    /// List conversations (1:1 and groups); delete, mute, unmute, archive, unarchive one
    Conversations(ConversationsArgs),
    /// Files sent and received: list them, or fetch and save one (`files get MESSAGE_ID`)
    Files(FilesArgs),
    /// Chat with a contact or a group interactively (line mode; Ctrl-D to leave)
    Chat(ChatArgs),
    /// Full-screen terminal UI: conversations, delivery ticks, requests, groups (F1: keys)
    Tui,
    /// Web UI: print a one-time login link for the running node's browser UI (`--open`: also
    /// open it in your browser; else it opens nothing)
    Ui(UiArgs),
    /// Private groups (MLS, up to 1,000 members): create, add, remove, leave, rename, list,
    /// info, and invitations
    #[command(subcommand)]
    Group(GroupCommand),
    /// The identity's root key: export it as a recovery phrase
    #[command(subcommand)]
    Identity(IdentityCommand),
    /// The data dir's passphrase (encryption at rest): `change` sets or changes it
    #[command(subcommand)]
    Passphrase(PassphraseCommand),
    /// Write an encrypted backup of identity, contacts, profile, settings and history to FILE
    Backup(BackupArgs),
    /// Read a backup made by `rhizo backup` into a new, empty data dir
    Restore(RestoreArgs),
    /// This identity's devices: link a new one (`link` on it, `add` here), list, revoke
    #[command(subcommand)]
    Device(DeviceCommand),
    /// Pair a light client (browser, phone, script): print a one-time pairing ticket and its QR
    /// code; `list` and `revoke` the paired clients
    Pair(PairArgs),
    /// Set or show profiles (name, avatar), sent end-to-end to contacts
    #[command(subcommand)]
    Profile(ProfileCommand),
    /// Refuse a peer id or an IP range (CIDR), now and after restarts
    Ban(BanArgs),
    /// Lift a ban
    Unban {
        /// The peer id or IP range
        target: String,
    },
    /// List bans in force (yours and those bad reputations caused)
    Bans(JsonArg),
    /// Public broadcast channels (gossipsub): create, join, post, read
    #[command(subcommand)]
    Channel(ChannelCommand),
    /// Show what this node holds for others (mailbox) and what it still has to deliver
    Mailbox(MailboxArgs),
    /// Run a self-contained local demo network (hub, alice, bob on 127.0.0.1) and chat in it
    Demo(DemoArgs),
    /// This node as an agent: its card, and `agent serve` (any command becomes a worker)
    #[command(subcommand)]
    Agent(AgentCommand),
    /// Known agents (liveness, skills, breaker); `rhizo agents find SKILL` searches the DHT
    Agents(AgentsArgs),
    /// Delegate tasks to agents and follow them: send, list, show, cancel, input
    #[command(subcommand)]
    Task(TaskCommand),
    /// Serve MCP (Model Context Protocol) over stdin/stdout for AI assistants: contacts,
    /// messages, agents and tasks as tools
    Mcp,
    /// Check this node: data dir permissions, database integrity, disk space, bootstrap peers
    /// and, if it runs, clock skew and reachability; one verdict per check, with the fix
    Doctor(DoctorArgs),
    /// Print a shell completion script (bash, zsh, fish, …) to stdout
    Completions(CompletionsArgs),
    /// Print the man page (roff) to stdout, or write one page per command into a directory
    Man(ManArgs),
}
#[derive(Debug, Args)]
pub(crate) struct BanArgs {
    /// A peer id (12D3KooW…), or an IP range (192.0.2.0/24) or address
    pub(crate) target: String,
    /// For this many seconds (default: until `rhizo unban`)
    #[arg(long = "for", value_name = "SECS")]
    pub(crate) seconds: Option<u64>,
    /// Why (shown by `rhizo bans`)
    #[arg(long)]
    pub(crate) reason: Option<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ChannelCommand {
    /// Create a channel (and join it); prints the id others join with
    Create {
        /// Its name
        name: String,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Join a channel by its id
    Join {
        /// The channel id
        id: String,
        /// A local name for it
        #[arg(long)]
        name: Option<String>,
    },
    /// Leave a channel (its history here is deleted)
    Leave {
        /// The channel id or name
        channel: String,
    },
    /// List joined channels
    List(JsonArg),
    /// Post to a channel (signed by this device)
    Post {
        /// The channel id or name
        channel: String,
        /// The text (at most 4096 bytes)
        text: String,
    },
    /// Show a channel's recent posts
    Read {
        /// The channel id or name
        channel: String,
        /// How many
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ProfileCommand {
    /// Sign and send a new version of your profile to your contacts
    Set {
        /// Display name (1 to 64 characters)
        #[arg(long)]
        name: String,
        /// Avatar image file (PNG, JPEG, GIF or WebP; at most 32 KiB)
        #[arg(long, value_name = "FILE")]
        avatar: Option<std::path::PathBuf>,
        /// Also publish it in the DHT, readable by anyone who has your UID (opt-in)
        #[arg(long)]
        public: bool,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Show your profile, or a contact's (by name or UID; from the DHT if public)
    Show {
        /// Contact name or UID; omit for your own
        who: Option<String>,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub(crate) struct MailboxArgs {
    /// Fetch this node's own mailbox from its replicas now, then show the state
    #[arg(long)]
    pub(crate) fetch: bool,
    /// Print JSON
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Keep the demo nodes running after the script, until Ctrl-C
    #[arg(long)]
    pub(crate) keep: bool,
}

#[derive(Debug, Args)]
pub(crate) struct InviteArgs {
    /// Also print the ticket as a QR code
    #[arg(long)]
    pub(crate) qr: bool,
    /// Machine-readable JSON output
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ContactsCommand {
    /// Add a contact from their ticket (`rhizo invite` on their side) or their UID
    Add {
        /// The ticket (rhz1contact…), or a UID (looked up in the DHT; needs --name)
        ticket: String,
        /// Your name for them (default: the name in the ticket)
        #[arg(long)]
        name: Option<String>,
    },
    /// List contacts
    List(JsonArg),
    /// Give a contact a new name
    Rename {
        /// The contact's name (or UID)
        name: String,
        /// The new name
        new_name: String,
    },
    /// Remove a contact with your 1:1 history with them (groups stay); what they send later
    /// arrives as a message request
    Remove {
        /// The contact's name (or UID)
        name: String,
    },
    /// Block a contact (or any UID): nothing they send is shown or stored, also from
    /// mailboxes; their group texts are hidden. Undo with `unblock`
    Block {
        /// The contact's name, or a UID
        name: String,
    },
    /// Lift a block
    Unblock {
        /// The contact's name, or a UID
        name: String,
    },
    /// Show the safety number to compare with the contact, and mark them verified
    Verify {
        /// The contact's name
        name: String,
        /// Mark as verified without asking (after you compared the numbers)
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, Args)]
pub(crate) struct RequestsArgs {
    #[command(subcommand)]
    pub(crate) command: Option<RequestsCommand>,
    /// Machine-readable JSON output (for the list)
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum RequestsCommand {
    /// Accept: the sender becomes a contact and their messages appear, in order
    Accept {
        /// The sender's UID (or the name on their profile, as `rhizo requests` shows it)
        who: String,
        /// Your name for them (default: the name on their public profile)
        #[arg(long)]
        name: Option<String>,
    },
    /// Decline: drop what they sent (they may start a new conversation later)
    Decline {
        /// The sender's UID or profile name
        who: String,
    },
    /// Block: drop what they sent and refuse anything they send later
    Block {
        /// The sender's UID or profile name
        who: String,
    },
    /// Lift a block
    Unblock {
        /// The sender's UID
        uid: String,
    },
    /// List blocked senders
    Blocked(JsonArg),
}

#[derive(Debug, Args)]
pub(crate) struct FilesArgs {
    /// What to do (none: list the files)
    #[command(subcommand)]
    pub(crate) command: Option<FilesCommand>,
    /// Machine-readable JSON output
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum FilesCommand {
    /// Fetch a received file (with a progress bar) and save it
    Get {
        /// The file message's id (see `rhizo files`)
        id: i64,
        /// Where to save it (default: its name, in the current directory)
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
}

#[derive(Debug, Args)]
pub(crate) struct SendArgs {
    /// Contact name or UID, or a group (its name or id) when no contact has that name
    pub(crate) contact: String,
    /// The text (with --file: the caption, like --caption)
    #[arg(required_unless_present = "file")]
    pub(crate) text: Option<String>,
    /// Send this file (encrypted; contacts fetch it from this node)
    #[arg(long, value_name = "PATH")]
    pub(crate) file: Option<std::path::PathBuf>,
    /// The file's caption
    #[arg(long, requires = "file")]
    pub(crate) caption: Option<String>,
    /// Machine-readable JSON output
    #[arg(long)]
    pub(crate) json: bool,
    /// Send to the group of that name or id, even when a contact has the name
    #[arg(long)]
    pub(crate) group: bool,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct MessagesArgs {
    /// `delete ID`: delete a message (none: show the history)
    #[command(subcommand)]
    pub(crate) command: Option<MessagesCommand>,
    /// Contact name or UID, or a group (its name or id) when no contact has that name
    #[arg(required = true)]
    pub(crate) contact: Option<String>,
    /// The group of that name or id, even when a contact has the name
    #[arg(long)]
    pub(crate) group: bool,
    /// Machine-readable JSON output
    #[arg(long)]
    pub(crate) json: bool,
    /// At most this many messages
    #[arg(long, default_value_t = 1000)]
    pub(crate) limit: usize,
    /// With --json: also mark received messages read (human output always does)
    #[arg(long)]
    pub(crate) mark_read: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ChatArgs {
    /// Contact name or UID, or a group (its name or id) when no contact has that name
    pub(crate) contact: String,
    /// Chat in the group of that name or id, even when a contact has the name
    #[arg(long)]
    pub(crate) group: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum GroupCommand {
    /// Create a group (you are its admin); members are contact names or UIDs
    Create {
        /// Its name
        name: String,
        /// Members, comma-separated (contact names or UIDs)
        #[arg(long, value_delimiter = ',')]
        members: Vec<String>,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Add a member (admins)
    Add {
        /// The group's name or id
        group: String,
        /// Contact name or UID
        member: String,
    },
    /// Remove a member (admins); they cannot read what follows
    Remove {
        /// The group's name or id
        group: String,
        /// Contact name or UID
        member: String,
    },
    /// List, promote or demote a group's admins
    #[command(subcommand)]
    Admin(GroupAdminCommand),
    /// Leave a group (an admin first makes the longest-standing member admin if it was the last)
    Leave {
        /// The group's name or id
        group: String,
    },
    /// Rename a group (admins)
    Rename {
        /// The group's name or id
        group: String,
        /// The new name
        name: String,
    },
    /// List your groups
    List(JsonArg),
    /// A group's members, roles, epoch and safety fingerprint
    Info {
        /// The group's name or id
        group: String,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Invitations held from people who are not your contacts
    Requests(JsonArg),
    /// Join a group from a held invitation
    Accept {
        /// The invitation's id (`rhizo group requests`)
        id: i64,
    },
    /// Drop a held invitation
    Decline {
        /// The invitation's id
        id: i64,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum GroupAdminCommand {
    /// List a group's admins
    List {
        /// The group's name or id
        group: String,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Make a member admin (admins)
    #[command(alias = "promote")]
    Add {
        /// The group's name or id
        group: String,
        /// Contact name or UID of a member
        member: String,
    },
    /// Make an admin a member again (admins; the last admin cannot be demoted)
    #[command(alias = "demote")]
    Remove {
        /// The group's name or id
        group: String,
        /// Contact name or UID of an admin
        member: String,
    },
}

#[derive(Debug, Args)]
pub(crate) struct PairArgs {
    /// A name for the client, shown in `rhizo pair list`
    #[arg(long)]
    pub(crate) name: Option<String>,
    /// Print only the ticket text
    #[arg(long)]
    pub(crate) no_qr: bool,
    /// Where the client reaches this node, if not the local API: a gateway's
    /// ws://HOST:PORT/v1/gateway/<this node's peer id>
    #[arg(long)]
    pub(crate) url: Option<String>,
    #[command(subcommand)]
    pub(crate) command: Option<PairCommand>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum PairCommand {
    /// The paired light clients
    List(JsonArg),
    /// Revoke a paired light client (a prefix of its id, or its name): its session ends
    Revoke {
        /// The client
        client: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum DeviceCommand {
    /// On a new device (`rhizo init --link`, node running): print a link ticket and its QR code
    Link {
        /// Print only the ticket text
        #[arg(long)]
        no_qr: bool,
    },
    /// On a device with the root key: link the device of TICKET (shows its fingerprint first)
    Add {
        /// The new device's link ticket (`rhz1link…`)
        ticket: String,
        /// Link without asking to confirm the fingerprint
        #[arg(long)]
        yes: bool,
        /// A name for the device, shown in `rhizo device list`
        #[arg(long)]
        name: Option<String>,
        /// Days of history to send the new device (default: the config's `devices.history_days`, 30)
        #[arg(long)]
        history_days: Option<u32>,
        /// Wait for the history transfer, with a progress bar
        #[arg(long)]
        wait: bool,
    },
    /// This identity's devices: name, fingerprint, added, last seen
    List(JsonArg),
    /// Revoke a linked device (its id, name or fingerprint prefix): a new device list without it
    Revoke {
        /// The device
        device: String,
    },
}

#[derive(Debug, Args)]
pub(crate) struct InitArgs {
    /// A display name for this identity (kept locally)
    #[arg(long)]
    pub(crate) name: Option<String>,
    /// Make only a device key, to link this device to an identity you already have: then
    /// `rhizo run`, `rhizo device link`, and `rhizo device add TICKET` on the other device
    #[arg(long, conflicts_with = "name")]
    pub(crate) link: bool,
    /// Recreate an identity from its 24-word recovery phrase, read from stdin (never from the
    /// command line), with a new device key; the identity's old devices are left out of the
    /// device list this node publishes
    #[arg(long, conflicts_with = "link")]
    pub(crate) recover: bool,
    /// Encrypt the data dir (database and key files) with a passphrase, typed twice or read
    /// from the file named by RHIZO_PASSPHRASE_FILE; the node then asks for it at start
    #[arg(long)]
    pub(crate) passphrase: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum PassphraseCommand {
    /// Set the data dir's passphrase (a plaintext data dir is encrypted in place), or change
    /// it (everything is encrypted again under a new key). Stop the node first. The current
    /// passphrase comes from RHIZO_PASSPHRASE_FILE or the terminal, the new one from
    /// RHIZO_NEW_PASSPHRASE_FILE or the terminal (typed twice)
    Change,
}

#[derive(Debug, Args)]
pub(crate) struct BackupArgs {
    /// The backup file to write (never overwritten)
    pub(crate) file: std::path::PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct RestoreArgs {
    /// The backup file written by `rhizo backup`
    pub(crate) file: std::path::PathBuf,
    /// Encrypt the restored data dir with a new passphrase (RHIZO_NEW_PASSPHRASE_FILE or
    /// typed twice)
    #[arg(long)]
    pub(crate) passphrase: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum IdentityCommand {
    /// Print the root key as a 24-word recovery phrase (BIP-39): write it down, keep it secret
    ExportPhrase,
}

#[derive(Debug, Args)]
pub(crate) struct UiArgs {
    /// Also open the link in your browser: with `$BROWSER` if set (commands separated by `:`,
    /// words by spaces; `%s` stands for the link, else it comes last), else with `xdg-open`
    /// (`open` on macOS). If that fails the link is still printed to open by hand (exit 0)
    #[arg(long)]
    pub(crate) open: bool,
}

#[derive(Debug, Args)]
pub(crate) struct JsonArg {
    /// Machine-readable JSON output
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ConfigCommand {
    /// Print the effective configuration (after file, environment and flags) as TOML
    Show(NodeArgs),
}

/// Settings of a running node, as flags.
#[derive(Debug, Args, Default)]
pub(crate) struct NodeArgs {
    /// Listen address, repeatable [env: RHIZO_LISTEN] [default: /ip4/0.0.0.0/tcp/4747 and
    /// /ip4/0.0.0.0/udp/4747/quic-v1]
    #[arg(long = "listen", value_name = "MULTIADDR")]
    pub(crate) listen: Vec<String>,
    /// Bootstrap peer to dial, repeatable, e.g. /ip4/192.0.2.1/tcp/4747/p2p/12D3Koo… [env: RHIZO_BOOTSTRAP]
    #[arg(long = "bootstrap", value_name = "MULTIADDR")]
    pub(crate) bootstrap: Vec<String>,
    /// Do not discover peers on the local network (mDNS) [env: RHIZO_MDNS=false]
    #[arg(long, conflicts_with = "mdns")]
    pub(crate) no_mdns: bool,
    /// Discover peers on the local network (mDNS; the default)
    #[arg(long)]
    pub(crate) mdns: bool,
    /// Advertise this address instead of the listen addresses, repeatable [env: RHIZO_ANNOUNCE]
    #[arg(long = "announce", value_name = "MULTIADDR")]
    pub(crate) announce: Vec<String>,
    /// Self-update (rekey) each conversation after N sent messages [env: RHIZO_REKEY_MESSAGES] [default: 100]
    #[arg(long, value_name = "N")]
    pub(crate) rekey_messages: Option<u64>,
    /// Days mailbox replicas keep envelopes for an offline contact, 3 to 7 [env: RHIZO_MAILBOX_TTL_DAYS] [default: 7]
    #[arg(long, value_name = "DAYS")]
    pub(crate) mailbox_ttl_days: Option<u64>,
    /// Fetch this node's mailbox every N seconds [env: RHIZO_MAILBOX_POLL_SECS] [default: 60]
    #[arg(long, value_name = "SECS")]
    pub(crate) mailbox_poll_secs: Option<u64>,
    /// Re-replicate mailbox entries held for others every N seconds [env: RHIZO_MAILBOX_REPLICATE_SECS] [default: 600]
    #[arg(long, value_name = "SECS")]
    pub(crate) mailbox_replicate_secs: Option<u64>,
    /// Envelopes this node holds for others from one sender [env: RHIZO_MAILBOX_MAX_PER_SENDER] [default: 1024]
    #[arg(long, value_name = "N")]
    pub(crate) mailbox_max_per_sender: Option<u64>,
    /// Inbound connections kept at most [env: RHIZO_MAX_INBOUND] [default: 64]
    #[arg(long, value_name = "N")]
    pub(crate) max_inbound: Option<u64>,
    /// Outbound connections kept at most [env: RHIZO_MAX_OUTBOUND] [default: 32]
    #[arg(long, value_name = "N")]
    pub(crate) max_outbound: Option<u64>,
    /// Connections from one IP address at most [env: RHIZO_MAX_PER_IP] [default: 16]
    #[arg(long, value_name = "N")]
    pub(crate) max_per_ip: Option<u64>,
    /// Must-connect peer (…/p2p/ID), repeatable: bypasses limits, redialled with backoff [env: RHIZO_TRUSTED]
    #[arg(long = "trusted", value_name = "MULTIADDR")]
    pub(crate) trusted: Vec<String>,
    /// Serve as a circuit relay (v2) for nodes that cannot be reached directly [env: RHIZO_RELAY]
    #[arg(long)]
    pub(crate) relay: bool,
    /// Reserve a slot on this relay (…/p2p/ID), repeatable, so others reach you through it [env: RHIZO_RELAYS]
    #[arg(long = "relay-via", value_name = "MULTIADDR")]
    pub(crate) relay_via: Vec<String>,
    /// Map the listen port on the router with UPnP (multicasts on the LAN) [env: RHIZO_UPNP]
    #[arg(long)]
    pub(crate) upnp: bool,
    /// Ask contacts' nodes not to show when you are online [env: RHIZO_HIDE_PRESENCE]
    #[arg(long)]
    pub(crate) hide_presence: bool,
    /// Take and send no batch frames, as a node older than them (interop tests) [env: RHIZO_BATCH_FRAMES]
    #[arg(long)]
    pub(crate) no_batch_frames: bool,
    /// Serve light clients that cannot reach their home node: WebSockets on IP:PORT spliced to
    /// home nodes connected to this one [env: RHIZO_GATEWAY]
    #[arg(long, value_name = "IP:PORT")]
    pub(crate) gateway: Option<String>,
    /// A MaxMind country database (.mmdb) you supply, for --block-country [env: RHIZO_GEOIP_DB]
    #[arg(long, value_name = "FILE")]
    pub(crate) geoip_db: Option<std::path::PathBuf>,
    /// Refuse connections from this country (ISO code), repeatable; needs --geoip-db [env: RHIZO_BLOCKED_COUNTRIES]
    #[arg(long = "block-country", value_name = "CC")]
    pub(crate) block_country: Vec<String>,
    /// Ask peers for samples of their peer books every N seconds [env: RHIZO_PEX_INTERVAL_SECS] [default: 60]
    #[arg(long, value_name = "SECS")]
    pub(crate) pex_interval_secs: Option<u64>,
}

impl Cli {
    /// The settings given as flags, as the top config layer.
    pub(crate) fn flag_layer(&self, node: Option<&NodeArgs>) -> ConfigLayer {
        let mut layer = ConfigLayer {
            data_dir: self.data_dir.clone(),
            api: self.api.clone(),
            ..Default::default()
        };
        if let Some(node) = node {
            if !node.listen.is_empty() {
                layer.listen = Some(node.listen.clone());
            }
            if !node.bootstrap.is_empty() {
                layer.bootstrap = Some(node.bootstrap.clone());
            }
            if !node.announce.is_empty() {
                layer.announce = Some(node.announce.clone());
            }
            if node.rekey_messages.is_some() {
                layer.rekey_messages = node.rekey_messages;
            }
            if node.mailbox_ttl_days.is_some() {
                layer.mailbox_ttl_days = node.mailbox_ttl_days;
            }
            if node.mailbox_poll_secs.is_some() {
                layer.mailbox_poll_secs = node.mailbox_poll_secs;
            }
            if node.mailbox_replicate_secs.is_some() {
                layer.mailbox_replicate_secs = node.mailbox_replicate_secs;
            }
            if node.mailbox_max_per_sender.is_some() {
                layer.mailbox_max_per_sender = node.mailbox_max_per_sender;
            }
            if node.max_inbound.is_some() {
                layer.max_inbound = node.max_inbound;
            }
            if node.max_outbound.is_some() {
                layer.max_outbound = node.max_outbound;
            }
            if node.max_per_ip.is_some() {
                layer.max_per_ip = node.max_per_ip;
            }
            if !node.trusted.is_empty() {
                layer.trusted = Some(node.trusted.clone());
            }
            if node.relay {
                layer.relay = Some(true);
            }
            if !node.relay_via.is_empty() {
                layer.relays = Some(node.relay_via.clone());
            }
            if node.upnp {
                layer.upnp = Some(true);
            }
            if node.hide_presence {
                layer.hide_presence = Some(true);
            }
            if node.no_batch_frames {
                layer.batch_frames = Some(false);
            }
            if node.gateway.is_some() {
                layer.gateway = node.gateway.clone();
            }
            if node.geoip_db.is_some() {
                layer.geoip_db = node.geoip_db.clone();
            }
            if node.pex_interval_secs.is_some() {
                layer.pex_interval_secs = node.pex_interval_secs;
            }
            if !node.block_country.is_empty() {
                layer.blocked_countries = Some(node.block_country.clone());
            }
            if node.no_mdns {
                layer.mdns = Some(false);
            } else if node.mdns {
                layer.mdns = Some(true);
            }
        }
        layer
    }
}

#[cfg(test)]
mod env_help_tests {
    /// `--help` names every environment variable the node reads (a stale list is a bug).
    #[test]
    fn the_help_names_every_environment_variable() {
        for (name, _) in rhizo_node::config::ENV_VARS {
            assert!(
                super::ENV_HELP.contains(name),
                "--help does not name {name}"
            );
        }
    }
}
