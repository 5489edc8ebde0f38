/**
 * The guest activity state field's values (SDM Vol. 3C 25.4.2, "Guest Non-Register State"; kvm:
 * GUEST_ACTIVITY_*): what the logical processor was doing when the VM exit happened, or is to do
 * after VM entry.
 */
export const GUEST_ACTIVITY = {
  /** Executing instructions normally. */
  ACTIVE: 0,
  /** Halted after HLT. */
  HLT: 1,
  /** Shut down after a triple fault. */
  SHUTDOWN: 2,
  /** Waiting for a startup IPI. */
  WAIT_SIPI: 3,
} as const;
export type GuestActivity = (typeof GUEST_ACTIVITY)[keyof typeof GUEST_ACTIVITY];
