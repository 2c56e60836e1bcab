//! Model formats as served: plain data plus the maths to score it, with no web or training
//! dependencies. Trainers produce these; services load them from artifacts and score them.

pub mod als;
pub mod drift;
pub mod forest;
