//! Invite codes: `<hostname-with-dashes>-xxxxx-xxxxx`, with a number of uses.

use chrono::Utc;

use super::{AccountError, AccountService, generate_app_password};
use crate::storage::accounts::Invite;

impl AccountService<'_> {
    fn invite_code(&self) -> String {
        let host = self.config.hostname.replace('.', "-");
        let part = || generate_app_password().replace('-', "")[..5].to_owned();
        format!("{host}-{}-{}", part(), part())
    }

    /// Makes an invite code with `uses` uses (1 to 1,000) for `for_account` (`admin` for the
    /// operator's own).
    pub async fn create_invite(
        &self,
        uses: i64,
        for_account: &str,
    ) -> Result<String, AccountError> {
        let uses = u32::try_from(uses)
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or(AccountError::OutOfRange(
                "useCount must be an integer from 1 to 1000",
            ))?;
        loop {
            let invite = Invite {
                code: self.invite_code(),
                available: uses,
                for_account: for_account.to_owned(),
                used_by: vec![],
                disabled: false,
                created_at: Utc::now(),
            };
            if self.records().create_invite(&invite).await? {
                return Ok(invite.code);
            }
        }
    }

    /// Makes `count` codes (1 to 100) for each account in `for_accounts`.
    pub async fn create_invites(
        &self,
        count: i64,
        uses: i64,
        for_accounts: &[String],
    ) -> Result<Vec<(String, Vec<String>)>, AccountError> {
        let count = usize::try_from(count)
            .ok()
            .filter(|n| (1..=100).contains(n))
            .ok_or(AccountError::OutOfRange(
                "codeCount must be an integer from 1 to 100",
            ))?;
        let mut out = Vec::new();
        for account in for_accounts {
            let mut codes = Vec::new();
            for _ in 0..count {
                codes.push(self.create_invite(uses, account).await?);
            }
            out.push((account.clone(), codes));
        }
        Ok(out)
    }
}
