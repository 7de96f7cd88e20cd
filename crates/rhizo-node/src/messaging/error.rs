//! Typed errors, one per operation of the messaging service, each with its cause as
//! `#[source]` where there is one. The local API maps every variant to an HTTP status and a
//! stable error code (`api::messaging_error`).

use rhizo_core::{IdCodeError, records::RecordError, ticket::TicketError};
use rhizo_engine::EngineError;
use rhizo_net::NetError;
use rhizo_store::{DbError, StoreError};

/// Why adding, listing or verifying a contact (or reading the history with one) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ContactError {
    /// No contact by that name or UID.
    #[error("no contact '{0}': add one with `rhizo contacts add TICKET`")]
    UnknownContact(String),
    /// The ticket does not parse or verify.
    #[error("invalid ticket: {0}")]
    BadTicket(#[source] TicketError),
    /// Our own ticket or UID.
    #[error("that is your own {0}")]
    Ourselves(&'static str),
    /// The ticket carries no name and none was given.
    #[error("the ticket carries no name: pass --name NAME")]
    NoName,
    /// Not a UID.
    #[error("invalid UID: {0}")]
    BadUid(#[source] IdCodeError),
    /// The UID's identity or device list is not in the DHT.
    #[error(
        "no identity record for UID {0} was found in the DHT: check the UID, and that their node \
         is running and connected to the network (or ask for their ticket)"
    )]
    NotInDht(String),
    /// None of the contact's devices proved that it belongs to them.
    #[error(
        "none of {0}'s devices proves that it belongs to them (a device must sign its \
         certificate, in the ticket or in its KeyPackages): ask them for a new ticket \
         (`rhizo invite`), or retry adding by UID once their node has published its KeyPackages"
    )]
    UnprovenDevices(String),
    /// The DHT answered only an older device list for the UID than one found before.
    #[error(
        "the DHT gave only an older device list for UID {0} than one seen before (a stale or \
         lying node): not used; try again later"
    )]
    StaleDeviceList(String),
    /// Another contact (another UID, so a different key) already has that name.
    #[error(transparent)]
    NameTaken(StoreError),
    /// A device of the ticket belongs to another contact already.
    #[error(transparent)]
    DeviceTaken(StoreError),
    /// The network layer could not tell our addresses.
    #[error("the network is not running: {0}")]
    Network(#[source] NetError),
    /// The database's owner did not run the job (busy, closed) or its commit failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The engine (database, MLS, signing).
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl From<StoreError> for ContactError {
    fn from(e: StoreError) -> Self {
        match e {
            e @ StoreError::NameTaken(_) => Self::NameTaken(e),
            e @ StoreError::DeviceKeyTaken { .. } => Self::DeviceTaken(e),
            e => Self::Engine(EngineError::Store(e)),
        }
    }
}

/// Why a text could not be queued.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// Empty or too long.
    #[error("a message has 1 to {max} bytes of text")]
    BadText {
        /// [`rhizo_engine::MAX_TEXT_BYTES`].
        max: usize,
    },
    /// No contact by that name or UID.
    #[error("no contact '{0}': add one with `rhizo contacts add TICKET`")]
    UnknownContact(String),
    /// The contact's KeyPackages could not be found in the DHT.
    #[error(
        "cannot start a conversation with {0}: none of their devices' KeyPackages were found \
         in the DHT (is their node running and connected to the network?)"
    )]
    NoKeyPackages(String),
    /// The database's owner did not run the job (busy, closed) or its commit failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The engine (database, MLS, signing).
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// Why a group operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GroupError {
    /// No group by that id (or name).
    #[error("no group '{0}': see `rhizo group list`")]
    UnknownGroup(String),
    /// Several groups carry that name.
    #[error("several groups are named '{0}': use the group's id (`rhizo group list`)")]
    AmbiguousGroup(String),
    /// No held group invitation with that id.
    #[error("no group request {0}: see `rhizo group requests`")]
    UnknownRequest(i64),
    /// A member is neither a contact nor a UID.
    #[error("'{0}' is neither a contact nor a UID")]
    UnknownMember(String),
    /// No member was given, or too many.
    #[error("give 1 to {max} members")]
    BadMembers {
        /// The most members one call takes.
        max: usize,
    },
    /// Empty or too long.
    #[error("a message has 1 to {max} bytes of text")]
    BadText {
        /// [`rhizo_engine::MAX_TEXT_BYTES`].
        max: usize,
    },
    /// None of a member's devices' KeyPackages could be found in the DHT.
    #[error(
        "cannot add {0}: none of their devices' KeyPackages were found in the DHT (is their \
         node running and connected to the network?)"
    )]
    NoKeyPackages(String),
    /// A member given by UID could not be looked up.
    #[error(transparent)]
    Contact(#[from] ContactError),
    /// The database's owner did not run the job (busy, closed) or its commit failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The engine (database, MLS, signing, group rules).
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl From<StoreError> for GroupError {
    fn from(e: StoreError) -> Self {
        Self::Engine(EngineError::Store(e))
    }
}

/// Why setting, publishing or reading a profile failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProfileError {
    /// The name or avatar does not fit a profile.
    #[error("invalid profile: {0}")]
    BadProfile(#[source] RecordError),
    /// We have not set one.
    #[error("you have no profile yet: set one with `rhizo profile set --name NAME`")]
    NoOwnProfile,
    /// Neither a contact nor a UID.
    #[error("no contact '{0}': add one with `rhizo contacts add TICKET`, or give a UID")]
    UnknownContact(String),
    /// No public profile in the DHT.
    #[error(
        "no public profile of {0} was found (profiles are opt-in: they may not have published one)"
    )]
    NotPublished(String),
    /// No DHT node to publish on.
    #[error("no node to publish the profile on (is the node connected?)")]
    NotConnected,
    /// Publishing failed.
    #[error("publishing the profile failed: {0}")]
    Publish(#[source] NetError),
    /// The database's owner did not run the job (busy, closed) or its commit failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The engine (database, MLS, signing).
    #[error(transparent)]
    Engine(EngineError),
}

impl From<EngineError> for ProfileError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Record(e) => Self::BadProfile(e),
            e => Self::Engine(e),
        }
    }
}

impl From<StoreError> for ProfileError {
    fn from(e: StoreError) -> Self {
        Self::Engine(EngineError::Store(e))
    }
}

/// Why a message request could not be listed, accepted, declined or blocked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// No pending request from that sender.
    #[error("no message request from '{0}': see `rhizo requests`")]
    UnknownRequest(String),
    /// Several requests carry that name.
    #[error("several requests carry the name '{0}': use the UID (`rhizo requests`)")]
    AmbiguousName(String),
    /// The request carries no name and none was given.
    #[error("this request carries no name (no public profile was found): pass --name NAME")]
    NoName,
    /// Not a UID.
    #[error("invalid UID: {0}")]
    BadUid(#[source] IdCodeError),
    /// Our own UID.
    #[error("that is your own UID")]
    Ourselves,
    /// Accepting: adding the sender as a contact failed.
    #[error(transparent)]
    Contact(#[from] ContactError),
    /// The database's owner did not run the job (busy, closed) or its commit failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The engine (database, MLS, signing).
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl From<StoreError> for RequestError {
    fn from(e: StoreError) -> Self {
        Self::Engine(EngineError::Store(e))
    }
}

/// Why fetching our mailbox or reading its status failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The database's owner did not run the job (busy, closed) or its commit failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The engine (database, MLS, signing).
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl From<StoreError> for FetchError {
    fn from(e: StoreError) -> Self {
        Self::Engine(EngineError::Store(e))
    }
}

/// Why setting, showing or finding agent cards failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CardError {
    /// The card breaks a rule of the card format.
    #[error("invalid agent card: {0}")]
    BadCard(#[source] RecordError),
    /// Not a valid skill id.
    #[error("invalid skill id '{0}': a skill id is 1-64 characters of a-z, 0-9, '.', '_' and '-'")]
    BadSkill(String),
    /// We have no card.
    #[error("this node has no agent card: set one with `rhizo agent card set`")]
    NoCard,
    /// No card is known or found for that agent.
    #[error(
        "no agent card of '{0}' is known or found in the DHT: check the name or UID, or find \
         agents by skill with `rhizo agents find SKILL`"
    )]
    UnknownAgent(String),
    /// `agents ask`: not a contact (a capability query goes over a conversation).
    #[error(
        "'{0}' is not a contact: asking an agent goes over your conversation with it; add it \
         first, or read its card from the DHT (`GET /v1/agents/{{uid}}?refresh=1`)"
    )]
    UnknownContact(String),
    /// `agents ask`: a contact with no conversation yet.
    #[error("there is no conversation with '{0}' yet: send it a message or a task first, then ask")]
    NoConversation(String),
    /// `agents ask`: the contact answered that it has no card.
    #[error("'{0}' answered that it has no agent card (it is not an agent)")]
    NotAnAgent(String),
    /// `agents ask`: no answer in time.
    #[error(
        "'{who}' did not answer within {secs} s: it may be offline (the question waits in its \
         mailbox and its answer updates the cached card); try again later"
    )]
    NoAnswer {
        /// Whom we asked.
        who: String,
        /// How long we waited.
        secs: u64,
    },
    /// The DHT lookup could not run.
    #[error("the DHT lookup failed")]
    Network(#[source] NetError),
    /// The database's owner did not run the job (busy, closed) or its commit failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The engine (database, MLS, signing).
    #[error(transparent)]
    Engine(EngineError),
}

impl From<EngineError> for CardError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Record(e) => Self::BadCard(e),
            e => Self::Engine(e),
        }
    }
}

impl From<StoreError> for CardError {
    fn from(e: StoreError) -> Self {
        Self::Engine(EngineError::Store(e))
    }
}

/// Any error of the messaging service and the channels (what the local API maps).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MessagingError {
    /// Contacts.
    #[error(transparent)]
    Contact(#[from] ContactError),
    /// Sending.
    #[error(transparent)]
    Send(#[from] SendError),
    /// Profiles.
    #[error(transparent)]
    Profile(#[from] ProfileError),
    /// Message requests.
    #[error(transparent)]
    Request(#[from] RequestError),
    /// The mailbox.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// Agent tasks.
    #[error(transparent)]
    Task(#[from] super::TaskError),
    /// Agent cards.
    #[error(transparent)]
    Card(#[from] CardError),
    /// Groups.
    #[error(transparent)]
    Group(#[from] GroupError),
    /// Managing contacts and conversations.
    #[error(transparent)]
    Manage(#[from] super::ManageError),
    /// Bad input (channels, API arguments).
    #[error("{0}")]
    BadInput(String),
    /// Not in that channel.
    #[error("{0}")]
    UnknownChannel(String),
    /// The database's write queue is full; the caller may retry shortly.
    #[error("busy: {0}")]
    Busy(String),
    /// The database.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Internal.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Why a job of the engine on the database's writer thread failed: the engine, or the
/// database's owner (busy, closed, a failed commit). Each operation's error takes it in.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JobError {
    /// The engine (database, MLS, signing).
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The database's owner.
    #[error(transparent)]
    Db(#[from] DbError),
}

macro_rules! from_job_error {
    ($($error:ty),*) => {$(
        impl From<JobError> for $error {
            fn from(e: JobError) -> Self {
                match e {
                    JobError::Engine(e) => Self::from(e),
                    JobError::Db(e) => Self::Db(e),
                }
            }
        }
    )*};
}

from_job_error!(
    ContactError,
    SendError,
    ProfileError,
    RequestError,
    FetchError,
    CardError,
    GroupError
);
