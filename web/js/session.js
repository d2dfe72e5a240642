// The signed-in user, shared by the shell and the views.

const RANKS = { viewer: 1, operator: 2, approver: 3, admin: 4 };
let user = null;

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

export const ROLES = Object.keys(RANKS);
