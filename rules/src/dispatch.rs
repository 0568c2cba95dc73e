//! The life of an emergency request: open → assigned → en_route → on_scene → resolved, or
//! cancelled, and who may make each move.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Open,
    Assigned,
    EnRoute,
    OnScene,
    Resolved,
    Cancelled,
}

impl Status {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "open" => Self::Open,
            "assigned" => Self::Assigned,
            "en_route" => Self::EnRoute,
            "on_scene" => Self::OnScene,
            "resolved" => Self::Resolved,
            "cancelled" => Self::Cancelled,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Assigned => "assigned",
            Self::EnRoute => "en_route",
            Self::OnScene => "on_scene",
            Self::Resolved => "resolved",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn is_active(self) -> bool {
        !matches!(self, Self::Resolved | Self::Cancelled)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who is asking, relative to this request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    /// The person who raised it.
    Requester,
    Dispatcher,
    /// The responder assigned to it.
    AssignedResponder,
}

impl Actor {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "requester" => Self::Requester,
            "dispatcher" => Self::Dispatcher,
            "assigned_responder" => Self::AssignedResponder,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    #[error("an emergency request cannot go from {from} to {to}")]
    NotAllowed { from: Status, to: Status },
    #[error("a {actor} may not move an emergency request from {from} to {to}")]
    Forbidden { actor: &'static str, from: Status, to: Status },
}

/// Checks one move. Assignment (open → assigned) is the dispatcher's, through
/// `assign_responder`; reassignment keeps the status `assigned`.
pub fn transition(from: Status, to: Status, actor: Actor) -> Result<(), TransitionError> {
    use Status::*;
    let allowed = matches!(
        (from, to),
        (Open, Assigned) | (Assigned, Assigned) | (Assigned, EnRoute) | (EnRoute, OnScene) | (OnScene, Resolved)
    ) || (from.is_active() && to == Cancelled);
    if !allowed {
        return Err(TransitionError::NotAllowed { from, to });
    }
    let permitted = match actor {
        Actor::Dispatcher => true,
        Actor::AssignedResponder => matches!(to, EnRoute | OnScene | Resolved),
        // The requester may call it off until help is on the way.
        Actor::Requester => to == Cancelled && matches!(from, Open | Assigned),
    };
    if permitted {
        Ok(())
    } else {
        let actor = match actor {
            Actor::Requester => "requester",
            Actor::Dispatcher => "dispatcher",
            Actor::AssignedResponder => "assigned responder",
        };
        Err(TransitionError::Forbidden { actor, from, to })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Actor::*;
    use Status::*;

    const ALL: [Status; 6] = [Open, Assigned, EnRoute, OnScene, Resolved, Cancelled];

    #[test]
    fn the_happy_path_is_allowed_for_the_dispatcher() {
        for (a, b) in [(Open, Assigned), (Assigned, EnRoute), (EnRoute, OnScene), (OnScene, Resolved)] {
            assert_eq!(transition(a, b, Dispatcher), Ok(()), "{a} -> {b}");
        }
    }

    #[test]
    fn responders_move_their_own_request_forward_but_do_not_assign_or_cancel() {
        assert_eq!(transition(Assigned, EnRoute, AssignedResponder), Ok(()));
        assert_eq!(transition(OnScene, Resolved, AssignedResponder), Ok(()));
        assert!(matches!(transition(Open, Assigned, AssignedResponder), Err(TransitionError::Forbidden { .. })));
        assert!(matches!(transition(EnRoute, Cancelled, AssignedResponder), Err(TransitionError::Forbidden { .. })));
    }

    #[test]
    fn requesters_may_only_cancel_before_help_is_on_the_way() {
        assert_eq!(transition(Open, Cancelled, Requester), Ok(()));
        assert_eq!(transition(Assigned, Cancelled, Requester), Ok(()));
        assert!(matches!(transition(EnRoute, Cancelled, Requester), Err(TransitionError::Forbidden { .. })));
        assert!(matches!(transition(Assigned, EnRoute, Requester), Err(TransitionError::Forbidden { .. })));
    }

    #[test]
    fn terminal_states_are_final_and_steps_are_not_skipped() {
        for to in ALL {
            assert!(matches!(transition(Resolved, to, Dispatcher), Err(TransitionError::NotAllowed { .. })));
            assert!(matches!(transition(Cancelled, to, Dispatcher), Err(TransitionError::NotAllowed { .. })));
        }
        assert!(matches!(transition(Open, OnScene, Dispatcher), Err(TransitionError::NotAllowed { .. })));
        assert!(matches!(transition(Assigned, Resolved, Dispatcher), Err(TransitionError::NotAllowed { .. })));
        assert!(matches!(transition(EnRoute, Open, Dispatcher), Err(TransitionError::NotAllowed { .. })));
    }

    #[test]
    fn names_round_trip() {
        for s in ALL {
            assert_eq!(Status::parse(s.as_str()), Some(s));
        }
        assert_eq!(Status::parse("closed"), None);
    }
}
