// The signed-in user and the session's settings, shared by the shell and the views.

const RANKS = { viewer: 1, operator: 2, approver: 3, admin: 4 };
let user = null;
let approvalRequired = true;

export function currentUser() {
  return user;
}

export function setUser(u) {
  user = u || null;
}

// True when the current user's role includes `role` (each role includes the previous).
export function can(role) {
  if (!user) return false;
  return (RANKS[user.role] || 0) >= (RANKS[role] || 99);
}

// The session document's approval_required (GET /api/session). Only an explicit false
// turns four-eyes approval off; a session without the field keeps the safe default.
export function setApprovalRequired(v) {
  approvalRequired = v !== false;
}

export function approvalIsRequired() {
  return approvalRequired;
}

export const ROLES = Object.keys(RANKS);
