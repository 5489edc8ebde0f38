import { ACCESS, PAGE_ACCESS } from "./access";
import { PFERR } from "./page-fault";
import type { PagingContext } from "./paging-context";

/**
 * Decides whether an access to a translated page is allowed (SDM 4.6.1 access rights and 4.6.2
 * protection keys). Returns 0 when allowed, otherwise the error-code bits the violation adds:
 * PRESENT, plus PK when a protection key forbade it. (The walker adds W/U/I from the access.)
 *
 * `pageAccess` is the ACC form of the translation (`PAGE_ACCESS`), `pkey` the leaf's key.
 */
export function accessRightsFault(
  ctx: PagingContext,
  pageAccess: number,
  pkey: number,
  access: number,
): number {
  const write = (access & ACCESS.WRITE) !== 0;
  const user = (access & ACCESS.USER) !== 0;
  const fetch = (access & ACCESS.FETCH) !== 0;
  const userPage = (pageAccess & PAGE_ACCESS.USER) !== 0;
  const writable = (pageAccess & PAGE_ACCESS.WRITE) !== 0;
  const executable = (pageAccess & PAGE_ACCESS.EXEC) !== 0;

  let fault = false;
  if (user) {
    // User-mode accesses need a user page; writes need R/W; fetches need !XD (SDM 4.6.1).
    fault = !userPage || (write && !writable) || (fetch && !executable);
  } else if (fetch) {
    // Supervisor fetches: XD applies; SMEP forbids fetching from user pages.
    fault = !executable || (userPage && ctx.smep);
  } else {
    // Supervisor data: CR0.WP makes read-only pages read-only; SMAP forbids user pages unless
    // the access is explicit and RFLAGS.AC is set.
    const smapBlocks = userPage && ctx.smap && ((access & ACCESS.IMPLICIT) !== 0 || !ctx.ac);
    fault = smapBlocks || (write && !writable && ctx.wp);
  }

  // Protection keys (SDM 4.6.2): IA-32e paging only, data accesses only; PKRU governs user pages
  // and IA32_PKRS supervisor pages. AD forbids any data access; WD forbids writes by user-mode
  // accesses, and by supervisor-mode ones when CR0.WP is set.
  let pkFault = false;
  if (!fetch && (userPage ? ctx.pke : ctx.pks)) {
    const rights = ((userPage ? ctx.pkru : ctx.pkrs) >>> (pkey * 2)) & 3;
    const accessDisabled = (rights & 1) !== 0;
    const writeDisabled = (rights & 2) !== 0;
    pkFault = accessDisabled || (writeDisabled && write && (user || ctx.wp));
  }

  if (!fault && !pkFault) return 0;
  return PFERR.PRESENT | (pkFault ? PFERR.PK : 0);
}
