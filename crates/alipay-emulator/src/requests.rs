//! The recent-requests log behind `GET /__emulator/requests`: every `/gateway.do` hit with the sign
//! content the gateway built, the verdict of the checks and the answer's code. A bounded ring, so a
//! long-running emulator does not grow without end.

use std::collections::VecDeque;

use serde::Serialize;

/// How many requests are kept.
pub(crate) const CAPACITY: usize = 1000;

/// One `/gateway.do` request.
#[derive(Clone, Debug, Default, Serialize)]
pub(crate) struct RequestRecord {
    pub id: u64,
    /// `yyyy-MM-dd HH:mm:ss`, Beijing.
    pub time: String,
    /// `GET` or `POST`.
    pub http_method: String,
    /// The `method` parameter, if any.
    pub method: Option<String>,
    pub app_id: Option<String>,
    /// From `biz_content`, when it names one.
    pub out_trade_no: Option<String>,
    /// What the gateway verified the signature against.
    pub sign_content: String,
    /// `ok`, or the sub-code of the first check that failed.
    pub verdict: String,
    /// The answer's `code` and `sub_code` (`10000` and none for a rendered cashier).
    pub code: Option<String>,
    pub sub_code: Option<String>,
    /// The fault injected into the answer, if any.
    pub fault: Option<String>,
}

/// The ring itself.
#[derive(Debug, Default)]
pub(crate) struct RequestLog {
    entries: VecDeque<RequestRecord>,
    next_id: u64,
}

impl RequestLog {
    pub(crate) fn push(&mut self, mut record: RequestRecord) {
        self.next_id += 1;
        record.id = self.next_id;
        if self.entries.len() == CAPACITY {
            self.entries.pop_front();
        }
        self.entries.push_back(record);
    }

    /// Oldest first.
    pub(crate) fn all(&self) -> Vec<RequestRecord> {
        self.entries.iter().cloned().collect()
    }

    pub(crate) fn clear(&mut self) {
        self.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_the_newest() {
        let mut log = RequestLog::default();
        for _ in 0..CAPACITY + 5 {
            log.push(RequestRecord::default());
        }
        let all = log.all();
        assert_eq!(all.len(), CAPACITY);
        assert_eq!(all[0].id, 6);
        assert_eq!(all[CAPACITY - 1].id, (CAPACITY + 5) as u64);
        log.clear();
        assert!(log.all().is_empty());
    }
}
