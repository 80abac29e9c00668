//! ListTransactions: the transactional ids the coordinator knows, with
//! their producer id and state, filtered by state, producer id, how long
//! the transaction has been open (v1) and a regular expression on the id
//! (v2), for `kafka-transactions list` and `sluice txn list`.

use kafka_protocol::messages::list_transactions_response::TransactionState;
use kafka_protocol::messages::{
    ListTransactionsRequest, ListTransactionsResponse, ProducerId, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;

use crate::broker::{now_ms, Broker};
use crate::error::BrokerError;
use crate::txn::state::TxnState;

const STATES: [TxnState; 6] = [
    TxnState::Empty,
    TxnState::Ongoing,
    TxnState::PrepareCommit,
    TxnState::PrepareAbort,
    TxnState::CompleteCommit,
    TxnState::CompleteAbort,
];

pub fn handle(broker: &Broker, body: ListTransactionsRequest) -> ListTransactionsResponse {
    let mut response = ListTransactionsResponse::default();
    let pattern = match body
        .transactional_id_pattern
        .as_deref()
        .filter(|p| !p.is_empty())
    {
        Some(p) => match regex::RegexBuilder::new(&format!("^(?:{p})$"))
            .size_limit(1 << 20)
            .build()
        {
            Ok(re) => Some(re),
            Err(e) => {
                response.error_code = BrokerError::InvalidRegularExpression(e.to_string()).code();
                return response;
            }
        },
        None => None,
    };
    let wanted_states: Vec<&str> = body.state_filters.iter().map(|s| s.as_str()).collect();
    response.unknown_state_filters = body
        .state_filters
        .iter()
        .filter(|s| !STATES.iter().any(|k| k.name() == s.as_str()))
        .cloned()
        .collect();
    let now = now_ms();
    for (id, meta) in broker.txns.all() {
        let state = meta.state.name();
        if !wanted_states.is_empty() && !wanted_states.contains(&state) {
            continue;
        }
        if !body.producer_id_filters.is_empty()
            && !body
                .producer_id_filters
                .contains(&ProducerId(meta.producer_id))
        {
            continue;
        }
        // v1: only transactions open longer than this many milliseconds.
        if body.duration_filter >= 0
            && (meta.state != TxnState::Ongoing || now - meta.start_ms < body.duration_filter)
        {
            continue;
        }
        if pattern.as_ref().is_some_and(|re| !re.is_match(&id)) {
            continue;
        }
        let mut listed = TransactionState::default();
        listed.transactional_id = TransactionalId(StrBytes::from_string(id));
        listed.producer_id = ProducerId(meta.producer_id);
        listed.transaction_state = StrBytes::from_static_str(state);
        response.transaction_states.push(listed);
    }
    response
}
