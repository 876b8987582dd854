/**
 * The public key an Ed25519 libp2p peer id carries inline: what a stage's commitment and a
 * sender's hand-off seal are checked against, with no key exchange. A peer id that is not one,
 * or that does not inline its key, is refused with the caller's error.
 */
import type { PublicKey } from '@libp2p/interface';
import { peerIdFromString } from '@libp2p/peer-id';
import type { InfermeshError, InfermeshErrorOptions } from '../errors.ts';

export function peerPublicKey(peerId: string, Refusal: new (message: string, options?: InfermeshErrorOptions) => InfermeshError): PublicKey {
  let key: PublicKey | undefined;
  try {
    key = (peerIdFromString(peerId) as { publicKey?: PublicKey }).publicKey;
  } catch (err) {
    throw new Refusal(`${JSON.stringify(peerId)} is not a peer id`, { cause: err });
  }
  if (!key) throw new Refusal(`peer id ${peerId} does not carry its public key`);
  return key;
}
