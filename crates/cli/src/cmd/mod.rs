pub mod convert;
pub mod diff;
pub mod export;
pub mod extract;
pub mod inspect;
pub mod merge;
pub mod synth;
pub mod verify;
