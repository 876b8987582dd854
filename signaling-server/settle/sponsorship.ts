/**
 * Whether the operator bonds for a donor that joined with a payout address. A sponsored bond
 * stays the operator's (Settlement.sponsor: slashable while it backs the donor, returned only to
 * the sponsor), so a script saying hello as many identities cannot cash it; what it can do is
 * tie the operator's ETH up in bonds, which these limits bound: one bond per payout address,
 * one per device signature, at most `perHour` in any hour, and `cap` wei in all (kept in the
 * ledger, across restarts); and none for a device that looks like one banned for cheating.
 */
import type { Address } from 'viem';
import type { SettlementLedger } from './ledger.ts';

export interface SponsorshipLimits {
  /** wei bonded per donor */
  stake: bigint;
  /** wei bonded in all, ever */
  cap: bigint;
  /** bonds in any hour */
  perHour: number;
  /** one bond per device signature (default true); tests that run several tabs on one machine turn it off */
  oncePerDevice?: boolean;
}

/** 0.1 ETH per donor, at most 20 an hour and 2 ETH in all (20 donors' bonds). */
export const DEFAULT_SPONSORSHIP: SponsorshipLimits = { stake: 100_000_000_000_000_000n, cap: 2_000_000_000_000_000_000n, perHour: 20 };

const HOUR_MS = 3_600_000;

/** Why a donor gets no bond now (a line for the log), or undefined when it may have one. */
export interface SponsoredDonor {
  address: Address;
  deviceSignature?: string;
  /** its device looks like one banned for cheating (trust/device-profile.ts): it stakes its own or serves unbonded */
  resemblesBanned?: boolean;
}

export function sponsorshipRefusal(ledger: SettlementLedger, donor: SponsoredDonor, limits: SponsorshipLimits, now: number): string | undefined {
  const done = ledger.sponsorships();
  if (limits.stake === 0n) return 'sponsorship is off';
  if (donor.resemblesBanned) return 'its device looks like one banned for cheating (same network, adapter and speed)';
  if (done.hasAddress(donor.address)) return `${donor.address} had its bond already`;
  if (limits.oncePerDevice !== false && donor.deviceSignature !== undefined && done.hasDevice(donor.deviceSignature)) return 'its device had a bond already (under another address)';
  if (done.total + limits.stake > limits.cap) return `the operator's sponsorship cap of ${limits.cap} wei is reached (${done.total} bonded for ${done.count} donors)`;
  if (done.since(now - HOUR_MS) >= limits.perHour) return `${limits.perHour} donors were bonded in the last hour, the most per hour`;
  return undefined;
}
