//! The drainer's `binlog.Cistern` gRPC service. Only `Notify` does anything: a pump that joins
//! calls it so the collector re-reads the pump list at once; the answer carries the refresh's
//! error, if any. The dump calls exist for wire compatibility and return nothing, as in the
//! original.

use std::pin::Pin;

use binlog_proto::binlog::{
    DumpBinlogReq, DumpBinlogResp, DumpDdlJobsReq, DumpDdlJobsResp, NotifyReq, NotifyResp,
    cistern_server::{Cistern, CisternServer},
};
use futures::Stream;
use tokio::sync::{mpsc, oneshot};
use tonic::{Request, Response, Status};

use crate::collector::NotifyRequest;

/// The service; forwards notifications to the collector.
pub struct CisternService {
    notifications: mpsc::Sender<NotifyRequest>,
}

impl CisternService {
    /// A service whose `Notify` asks the collector behind `notifications` to refresh.
    pub fn new(notifications: mpsc::Sender<NotifyRequest>) -> CisternServer<CisternService> {
        CisternServer::new(CisternService { notifications })
    }
}

type DumpStream = Pin<Box<dyn Stream<Item = Result<DumpBinlogResp, Status>> + Send>>;

#[tonic::async_trait]
impl Cistern for CisternService {
    type DumpBinlogStream = DumpStream;

    async fn dump_binlog(
        &self,
        _request: Request<DumpBinlogReq>,
    ) -> Result<Response<Self::DumpBinlogStream>, Status> {
        Ok(Response::new(Box::pin(futures::stream::empty())))
    }

    async fn dump_ddl_jobs(
        &self,
        _request: Request<DumpDdlJobsReq>,
    ) -> Result<Response<DumpDdlJobsResp>, Status> {
        Ok(Response::new(DumpDdlJobsResp::default()))
    }

    async fn notify(&self, _request: Request<NotifyReq>) -> Result<Response<NotifyResp>, Status> {
        let (reply, outcome) = oneshot::channel();
        self.notifications
            .send(reply)
            .await
            .map_err(|_| Status::unavailable("the drainer is shutting down"))?;
        match outcome.await {
            Ok(Ok(())) => Ok(Response::new(NotifyResp {})),
            Ok(Err(err)) => Err(Status::unknown(err)),
            Err(_) => Err(Status::unavailable("the drainer is shutting down")),
        }
    }
}
