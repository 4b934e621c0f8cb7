//! The five node states and which transitions between them are legal.
//!
//! States are what the registry stores and what binlogctl and the operator reason about; the
//! strings are the original's exactly.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The state of a pump or drainer, as stored in the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeState {
    /// Serving: a pump accepts prewrites, a drainer replicates.
    Online,
    /// Asked to pause; finishing in-flight work.
    Pausing,
    /// Stopped, expected back; its data still counts.
    Paused,
    /// Asked to go offline; a pump waits until every drainer consumed its data.
    Closing,
    /// Gone for good; drainers stop waiting for it.
    Offline,
}

impl NodeState {
    /// All states, in lifecycle order.
    pub const ALL: [NodeState; 5] = [
        NodeState::Online,
        NodeState::Pausing,
        NodeState::Paused,
        NodeState::Closing,
        NodeState::Offline,
    ];

    /// The original's string for this state.
    pub const fn as_str(self) -> &'static str {
        match self {
            NodeState::Online => "online",
            NodeState::Pausing => "pausing",
            NodeState::Paused => "paused",
            NodeState::Closing => "closing",
            NodeState::Offline => "offline",
        }
    }

    /// Whether a running node may move from `self` to `next` on its own initiative (an action,
    /// a signal, a start). Operators can still force any state with `update-pump`.
    pub fn can_transition_to(self, next: NodeState) -> bool {
        use NodeState::*;
        matches!(
            (self, next),
            // A start brings any node online (an offline pump must notify drainers first).
            (_, Online)
                | (Online, Pausing | Paused | Closing)
                | (Pausing, Paused)
                | (Closing, Offline)
        )
    }

    /// The state a node writes when it stops in `self` (the original's `commitStatus`):
    /// pausing or online ends paused, closing ends offline, anything else is kept.
    pub const fn final_state_on_stop(self) -> NodeState {
        match self {
            NodeState::Online | NodeState::Pausing => NodeState::Paused,
            NodeState::Closing => NodeState::Offline,
            other => other,
        }
    }
}

impl fmt::Display for NodeState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A state string that is not one of the five.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("state {0} is illegal, expected one of online, pausing, paused, closing, offline")]
pub struct IllegalState(pub String);

impl FromStr for NodeState {
    type Err = IllegalState;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        NodeState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| IllegalState(s.to_string()))
    }
}

/// An action a node can be asked to take over its HTTP API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Stop and come back later: ends `paused`.
    Pause,
    /// Leave for good: ends `offline` once it is safe.
    Close,
}

impl Action {
    /// The path segment of `PUT /state/<nodeId>/<action>`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Action::Pause => "pause",
            Action::Close => "close",
        }
    }

    /// The transient state a node enters when it accepts the action.
    pub const fn transient_state(self) -> NodeState {
        match self {
            Action::Pause => NodeState::Pausing,
            Action::Close => NodeState::Closing,
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Action {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pause" => Ok(Action::Pause),
            "close" => Ok(Action::Close),
            other => Err(format!("invalide action {other}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_round_trip() {
        for state in NodeState::ALL {
            assert_eq!(state.as_str().parse::<NodeState>(), Ok(state));
            assert_eq!(
                serde_json::to_string(&state).unwrap(),
                format!("\"{}\"", state.as_str())
            );
        }
    }

    #[test]
    fn illegal_state_names_the_input_and_the_choices() {
        let err = "Online".parse::<NodeState>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "state Online is illegal, expected one of online, pausing, paused, closing, offline"
        );
    }

    #[test]
    fn lifecycle_transitions() {
        use NodeState::*;
        assert!(Online.can_transition_to(Pausing));
        assert!(Pausing.can_transition_to(Paused));
        assert!(Online.can_transition_to(Paused));
        assert!(Online.can_transition_to(Closing));
        assert!(Closing.can_transition_to(Offline));
        assert!(Offline.can_transition_to(Online));
        assert!(Paused.can_transition_to(Online));

        assert!(
            !Online.can_transition_to(Offline),
            "offline only via closing"
        );
        assert!(
            !Paused.can_transition_to(Closing),
            "only an online node accepts close"
        );
        assert!(!Closing.can_transition_to(Paused));
        assert!(!Offline.can_transition_to(Paused));
        assert!(!Offline.can_transition_to(Offline));
    }

    #[test]
    fn stopping_settles_transient_states() {
        assert_eq!(NodeState::Online.final_state_on_stop(), NodeState::Paused);
        assert_eq!(NodeState::Pausing.final_state_on_stop(), NodeState::Paused);
        assert_eq!(NodeState::Closing.final_state_on_stop(), NodeState::Offline);
        assert_eq!(NodeState::Paused.final_state_on_stop(), NodeState::Paused);
    }

    #[test]
    fn actions_parse_and_name_bad_input() {
        assert_eq!("close".parse::<Action>(), Ok(Action::Close));
        assert_eq!("stop".parse::<Action>(), Err("invalide action stop".into()));
        assert_eq!(Action::Pause.transient_state(), NodeState::Pausing);
    }
}
