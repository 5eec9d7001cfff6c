//! Writing a repo as a CAR: the head commit first, then the tree in streaming export order.

use std::io::Write;
use std::ops::ControlFlow;

use crate::block::BlockSource;
use crate::car::CarWriter;
use crate::mst::ExportBlock;

use super::{Repo, RepoError};

/// Why an export stopped.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The repo could not be read.
    #[error(transparent)]
    Repo(#[from] RepoError),
    /// The output could not be written.
    #[error("writing the CAR failed: {0}")]
    Io(#[from] std::io::Error),
}

impl Repo {
    /// Streams the whole repo as a CAR v1 rooted at the head commit into `out`: the commit, then
    /// each MST node followed by its left subtree and, per entry, the record and the subtree
    /// after it. Only one block is held at a time. Returns the bytes written.
    pub fn export_car<W: Write>(&self, out: W) -> Result<u64, ExportError> {
        let head = self.head();
        let mut car = CarWriter::new(out, &[head])?;
        car.write_block(&head, &self.commit().encode())?;
        let source = self.mst().source().clone();
        let mut failure: Option<ExportError> = None;
        self.mst()
            .walk_export(&mut |block| {
                let result = match block {
                    ExportBlock::Node { cid, bytes } => {
                        car.write_block(&cid, &bytes).map_err(ExportError::from)
                    }
                    ExportBlock::Record { cid, .. } => match source.read_block(&cid) {
                        Some(bytes) => car.write_block(&cid, &bytes).map_err(ExportError::from),
                        None => Err(RepoError::MissingBlock(cid).into()),
                    },
                };
                match result {
                    Ok(()) => ControlFlow::Continue(()),
                    Err(e) => {
                        failure = Some(e);
                        ControlFlow::Break(())
                    }
                }
            })
            .map_err(RepoError::from)?;
        if let Some(e) = failure {
            return Err(e);
        }
        let written = car.bytes_written();
        car.finish()?;
        Ok(written)
    }
}
