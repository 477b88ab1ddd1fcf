//! `initialize`: negotiate the position encoding, remember the workspace, advertise.

use tower_lsp_server::jsonrpc::{Error, Result};
use tower_lsp_server::ls_types::{InitializeParams, InitializeResult, ServerInfo};

use crate::lsp::capabilities::server_capabilities;
use crate::lsp::from_proto;
use crate::lsp::state::{GlobalState, Session};
use crate::text::PositionEncoding;

pub fn handle(state: &GlobalState, params: InitializeParams) -> Result<InitializeResult> {
    let offered = params
        .capabilities
        .general
        .as_ref()
        .and_then(|general| general.position_encodings.as_ref())
        .map(|kinds| kinds.iter().map(|kind| kind.as_str()).collect::<Vec<_>>())
        .unwrap_or_default();
    let encoding = PositionEncoding::negotiate(offered);

    #[allow(deprecated)] // root_uri is deprecated in favour of workspace folders, but still sent.
    let root = params
        .workspace_folders
        .as_ref()
        .and_then(|folders| folders.first())
        .and_then(|folder| from_proto::file_path(&folder.uri))
        .or_else(|| params.root_uri.as_ref().and_then(from_proto::file_path));
    tracing::info!(
        encoding = encoding.as_str(),
        root = ?root,
        client = ?params.client_info.as_ref().map(|info| &info.name),
        "initialize"
    );

    let session = Session {
        encoding,
        root,
        client_capabilities: params.capabilities,
        initialization_options: params.initialization_options,
    };
    if !state.set_session(session) {
        return Err(Error::invalid_request());
    }
    Ok(InitializeResult {
        capabilities: server_capabilities(encoding),
        server_info: Some(ServerInfo {
            name: "pitcrew".to_owned(),
            version: Some(env!("CARGO_PKG_VERSION").to_owned()),
        }),
        offset_encoding: None,
    })
}
