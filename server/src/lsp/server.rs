//! The `LanguageServer` implementation: routes each method to its handler.

use std::sync::Arc;

use tower_lsp_server::jsonrpc::Result;
use tower_lsp_server::ls_types::{
    CodeAction, CodeActionParams, CodeActionResponse, DidChangeConfigurationParams,
    DidChangeTextDocumentParams, DidChangeWatchedFilesParams, DidCloseTextDocumentParams,
    DidOpenTextDocumentParams, DidSaveTextDocumentParams, ExecuteCommandParams, Hover, HoverParams,
    InitializeParams, InitializeResult, InitializedParams, LSPAny, WorkDoneProgressCancelParams,
};
use tower_lsp_server::{Client, LanguageServer, LspService};

use super::ext::{
    self, ConfigResult, DocumentTextParams, DocumentTextResult, PlanParams, PlanSnapshot,
    PlansResult, TaskDetail, TaskParams,
};
use super::handlers;
use super::state::GlobalState;
use super::transport;

pub struct Server {
    client: Client,
    state: Arc<GlobalState>,
}

impl Server {
    fn new(client: Client, state: Arc<GlobalState>) -> Self {
        Self { client, state }
    }

    async fn document_text(&self, params: DocumentTextParams) -> Result<DocumentTextResult> {
        handlers::document_text::handle(&self.state, params)
    }

    async fn config(&self) -> Result<ConfigResult> {
        handlers::config::handle(&self.state)
    }

    async fn plan(&self, params: PlanParams) -> Result<PlanSnapshot> {
        handlers::plan::handle(&self.state, params).await
    }

    async fn plans(&self) -> Result<PlansResult> {
        handlers::plan::all(&self.state).await
    }

    async fn task(&self, params: TaskParams) -> Result<TaskDetail> {
        handlers::task::handle(&self.state, params).await
    }

    async fn progress_cancel(&self, params: WorkDoneProgressCancelParams) {
        handlers::progress_cancel::handle(&self.state, params).await;
    }
}

impl LanguageServer for Server {
    async fn initialize(&self, params: InitializeParams) -> Result<InitializeResult> {
        handlers::initialize::handle(&self.state, params)
    }

    async fn initialized(&self, _: InitializedParams) {
        handlers::initialized::handle(&self.state, &self.client);
    }

    async fn shutdown(&self) -> Result<()> {
        tracing::info!("shutdown requested");
        self.state.request_shutdown();
        Ok(())
    }

    async fn did_open(&self, params: DidOpenTextDocumentParams) {
        handlers::did_open::handle(&self.state, params);
    }

    async fn did_change(&self, params: DidChangeTextDocumentParams) {
        handlers::did_change::handle(&self.state, params);
    }

    async fn did_save(&self, params: DidSaveTextDocumentParams) {
        handlers::did_save::handle(&self.state, &self.client, params);
    }

    async fn did_close(&self, params: DidCloseTextDocumentParams) {
        handlers::did_close::handle(&self.state, params);
    }

    async fn did_change_configuration(&self, params: DidChangeConfigurationParams) {
        handlers::did_change_configuration::handle(&self.state, &self.client, params);
    }

    async fn did_change_watched_files(&self, params: DidChangeWatchedFilesParams) {
        handlers::did_change_watched_files::handle(&self.state, &self.client, params);
    }

    async fn code_action(&self, params: CodeActionParams) -> Result<Option<CodeActionResponse>> {
        handlers::code_action::handle(&self.state, params).await
    }

    async fn code_action_resolve(&self, action: CodeAction) -> Result<CodeAction> {
        handlers::code_action_resolve::handle(&self.state, action).await
    }

    async fn execute_command(&self, params: ExecuteCommandParams) -> Result<Option<LSPAny>> {
        handlers::execute_command::handle(&self.state, &self.client, params).await
    }

    async fn hover(&self, params: HoverParams) -> Result<Option<Hover>> {
        handlers::hover::handle(&self.state, params)
    }
}

/// Serves LSP on stdin/stdout until the client says `exit` or goes away. Returns the process
/// exit code: 0 after `shutdown` then `exit`, 1 otherwise (as the specification asks).
pub async fn serve_stdio() -> i32 {
    let state = Arc::new(GlobalState::default());
    let service_state = state.clone();
    let (service, socket) = LspService::build(move |client| {
        service_state.set_client(client.clone());
        Server::new(client, service_state)
    })
    .custom_method(ext::DOCUMENT_TEXT, Server::document_text)
    .custom_method(ext::CONFIG, Server::config)
    .custom_method(ext::PLAN, Server::plan)
    .custom_method(ext::PLANS, Server::plans)
    .custom_method(ext::TASK, Server::task)
    .custom_method(ext::PROGRESS_CANCEL, Server::progress_cancel)
    .finish();
    transport::guarded(tokio::io::stdin(), tokio::io::stdout(), |input, output| {
        tower_lsp_server::Server::new(input, output, socket).serve(service)
    })
    .await;
    if state.shutdown_requested() { 0 } else { 1 }
}
