//! Invite codes: `<hostname-with-dashes>-xxxxx-xxxxx`, with a number of uses.

use chrono::Utc;

use super::{AccountError, AccountService, generate_app_password};
use crate::storage::accounts::Invite;
use crate::syntax::Did;

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
                used_at: vec![],
                created_by: "admin".to_owned(),
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

    /// Every invite code, newest first (`recent`) or most used first (`usage`), a page after
    /// `cursor` (the last code of the page before), at most `limit`.
    pub async fn list_invites(
        &self,
        by_usage: bool,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<Invite>, Option<String>), AccountError> {
        let mut all = self.records().list_invites().await?;
        if by_usage {
            all.sort_by(|a, b| {
                b.used_by
                    .len()
                    .cmp(&a.used_by.len())
                    .then(a.code.cmp(&b.code))
            });
        } else {
            all.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.code.cmp(&b.code)));
        }
        let start = cursor
            .and_then(|c| all.iter().position(|i| i.code == c))
            .map_or(0, |i| i + 1);
        let page: Vec<Invite> = all.into_iter().skip(start).take(limit).collect();
        let next = (page.len() == limit)
            .then(|| page.last().map(|i| i.code.clone()))
            .flatten();
        Ok((page, next))
    }

    /// The invite codes made for `did`.
    pub async fn account_invites(&self, did: &Did) -> Result<Vec<Invite>, AccountError> {
        let mut codes: Vec<Invite> = self
            .records()
            .list_invites()
            .await?
            .into_iter()
            .filter(|i| i.for_account == did.as_str())
            .collect();
        codes.sort_by_key(|i| std::cmp::Reverse(i.created_at));
        Ok(codes)
    }

    /// Disables the given codes and every code made for the given accounts.
    pub async fn disable_invites(
        &self,
        codes: &[String],
        accounts: &[String],
    ) -> Result<(), AccountError> {
        let records = self.records();
        for code in codes {
            records.disable_invite(code).await?;
        }
        if !accounts.is_empty() {
            for invite in records.list_invites().await? {
                if accounts.contains(&invite.for_account) {
                    records.disable_invite(&invite.code).await?;
                }
            }
        }
        Ok(())
    }

    /// Stops (or restarts) `did`'s invites: while stopped, its codes admit no one.
    pub async fn set_invites_disabled(
        &self,
        did: &Did,
        disabled: bool,
    ) -> Result<(), AccountError> {
        self.records()
            .update(did, |account| {
                account.invites_disabled = disabled;
                Ok::<_, AccountError>(())
            })
            .await?
            .ok_or_else(|| AccountError::NotFound(did.clone()))?;
        Ok(())
    }
}
