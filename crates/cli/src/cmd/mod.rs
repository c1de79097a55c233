pub mod convert;
pub mod diff;
pub mod export;
pub mod extract;
pub mod inspect;
pub mod merge;
pub mod verify;
