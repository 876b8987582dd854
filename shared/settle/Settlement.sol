// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title infermesh Settlement
/// @notice Pay-per-use for the infermesh grid, in native ETH.
///
/// Providers (donor nodes) stake; clients escrow. After each request a client signs an EIP-712
/// voucher with the *cumulative* amount it owes (payment-channel style), so the coordinator only
/// ever needs the latest one. The coordinator redeems vouchers into an undistributed pool and pays
/// providers from it in batches by verified work; a batch id is paid at most once, which is what
/// makes settlement idempotent across coordinator restarts. The validator slashes cheaters' stake
/// with an evidence hash.
///
/// A sponsor (the grid's operator, onboarding browser tabs that hold no ETH) bonds for a provider
/// with `sponsor`: the bond backs the provider (slashable, after its own stake) but stays the
/// sponsor's, returned to the sponsor alone after the delay. Sponsored ETH reaches a provider
/// only as earnings for verified work.
///
/// Roles are fixed at deployment and never change:
/// - coordinator: redeems vouchers, submits payout batches;
/// - validator:   slashes stake;
/// - treasury:    receives every slashed wei (pushed at slash time). Nothing else goes there.
///
/// Withdrawals (stake and escrow) take two steps separated by `withdrawDelay` seconds: the funds
/// stay in place while waiting, so the validator can still slash a departing provider and the
/// coordinator can still redeem a departing client's outstanding vouchers.
///
/// Conservation: address(this).balance == totalStaked + totalEscrowed + pool + totalEarnings
/// (totalStaked counts bonds), and every wei that leaves goes to a provider (unstake, earnings),
/// a sponsor (a bond returned), a client (withdraw) or the treasury (slash).
contract Settlement {
    // ---------------------------------------------------------------- roles and parameters

    address public immutable coordinator;
    address public immutable validator;
    address public immutable treasury;
    uint64 public immutable withdrawDelay;

    // ---------------------------------------------------------------- EIP-712

    bytes32 private constant DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");
    bytes32 public constant VOUCHER_TYPEHASH = keccak256("Voucher(address client,uint256 cumulativeAmount)");
    bytes32 private constant NAME_HASH = keccak256("infermesh Settlement");
    bytes32 private constant VERSION_HASH = keccak256("1");
    /// secp256k1n / 2: signatures with a higher s are the malleable twin of a valid one.
    uint256 private constant HALF_N = 0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0;

    struct Voucher {
        address client;
        uint256 cumulativeAmount;
    }

    // ---------------------------------------------------------------- state

    struct AccountBalances {
        uint256 stake;
        uint256 unstakeRequested;
        uint64 unstakeReadyAt;
        uint256 escrow;
        uint256 withdrawalRequested;
        uint64 withdrawalReadyAt;
        uint256 redeemed;
        uint256 earnings;
        /// a sponsor's bond backing this account as a provider (the sponsor's, not the account's)
        uint256 bond;
        address sponsor;
    }

    struct Pending {
        uint256 amount;
        uint64 readyAt;
    }

    mapping(address => uint256) public stakeOf;
    mapping(address => Pending) public unstakeRequestOf;
    mapping(address => uint256) public escrowOf;
    mapping(address => Pending) public withdrawalRequestOf;
    mapping(address => uint256) public redeemedOf;
    mapping(address => uint256) public earningsOf;
    mapping(bytes32 => bool) public batchPaid;
    /// a provider's sponsored bond, and whose it is
    mapping(address => uint256) public bondOf;
    mapping(address => address) public sponsorOf;
    /// keyed by provider: its sponsor's request to take the bond back
    mapping(address => Pending) public bondReturnRequestOf;

    /// Redeemed from escrow, not yet credited to a provider.
    uint256 public pool;
    uint256 public totalStaked;
    uint256 public totalEscrowed;
    uint256 public totalEarnings;
    uint256 public totalSlashed;

    // ---------------------------------------------------------------- events

    event Staked(address indexed provider, uint256 amount, uint256 stake);
    event UnstakeRequested(address indexed provider, uint256 amount, uint64 readyAt);
    event Unstaked(address indexed provider, uint256 amount);
    event Deposited(address indexed client, uint256 amount, uint256 escrow);
    event WithdrawalRequested(address indexed client, uint256 amount, uint64 readyAt);
    event Withdrawn(address indexed client, uint256 amount);
    event VoucherRedeemed(address indexed client, uint256 cumulativeAmount, uint256 amount);
    event BatchPaid(bytes32 indexed batchId, uint256 total, uint256 providers);
    event EarningsCredited(bytes32 indexed batchId, address indexed provider, uint256 amount);
    event EarningsWithdrawn(address indexed provider, uint256 amount);
    event Slashed(address indexed provider, uint256 amount, bytes32 indexed evidenceHash, bytes peerId);
    event Sponsored(address indexed provider, address indexed sponsor, uint256 amount, uint256 bond);
    event BondReturnRequested(address indexed provider, address indexed sponsor, uint256 amount, uint64 readyAt);
    event BondReturned(address indexed provider, address indexed sponsor, uint256 amount);

    // ---------------------------------------------------------------- errors

    error ZeroAddress();
    error ZeroAmount();
    error NotCoordinator(address caller);
    error NotValidator(address caller);
    error InsufficientStake(address provider, uint256 available, uint256 requested);
    error InsufficientEscrow(address client, uint256 available, uint256 needed);
    error NothingRequested(address account);
    error WithdrawalNotReady(address account, uint64 readyAt);
    error InvalidSignature();
    error VoucherSignerMismatch(address client, address signer);
    error VoucherNotAboveRedeemed(address client, uint256 cumulativeAmount, uint256 redeemed);
    error BatchAlreadyPaid(bytes32 batchId);
    error BatchLengthMismatch(uint256 providers, uint256 amounts);
    error PoolShort(uint256 available, uint256 needed);
    error NoEarnings(address provider);
    error TransferFailed(address to, uint256 amount);
    error NotSponsor(address provider, address caller);

    // ---------------------------------------------------------------- setup

    constructor(address coordinator_, address validator_, address treasury_, uint64 withdrawDelay_) {
        if (coordinator_ == address(0) || validator_ == address(0) || treasury_ == address(0)) revert ZeroAddress();
        coordinator = coordinator_;
        validator = validator_;
        treasury = treasury_;
        withdrawDelay = withdrawDelay_;
    }

    modifier onlyCoordinator() {
        if (msg.sender != coordinator) revert NotCoordinator(msg.sender);
        _;
    }

    modifier onlyValidator() {
        if (msg.sender != validator) revert NotValidator(msg.sender);
        _;
    }

    // ---------------------------------------------------------------- providers

    function stake() external payable {
        _stake(msg.sender);
    }

    /// Stakes for another provider: a sponsor (e.g. a grid operator onboarding browser tabs that
    /// hold no ETH) puts up the bond; it is the provider's stake from then on, slashable and
    /// withdrawable by the provider only.
    function stakeFor(address provider) external payable {
        if (provider == address(0)) revert ZeroAddress();
        _stake(provider);
    }

    /// Bonds for a provider as its sponsor: the bond backs the provider but stays the sponsor's
    /// (requestBondReturn, returnBond). A provider has one sponsor.
    function sponsor(address provider) external payable {
        if (provider == address(0)) revert ZeroAddress();
        if (msg.value == 0) revert ZeroAmount();
        address current = sponsorOf[provider];
        if (current != address(0) && current != msg.sender) revert NotSponsor(provider, current);
        sponsorOf[provider] = msg.sender;
        bondOf[provider] += msg.value;
        totalStaked += msg.value;
        emit Sponsored(provider, msg.sender, msg.value, bondOf[provider]);
    }

    /// The sponsor starts the delay to take `amount` of a provider's bond back; a new request replaces the last.
    function requestBondReturn(address provider, uint256 amount) external {
        if (sponsorOf[provider] != msg.sender) revert NotSponsor(provider, msg.sender);
        if (amount == 0) revert ZeroAmount();
        if (amount > bondOf[provider]) revert InsufficientStake(provider, bondOf[provider], amount);
        uint64 readyAt = uint64(block.timestamp) + withdrawDelay;
        bondReturnRequestOf[provider] = Pending(amount, readyAt);
        emit BondReturnRequested(provider, msg.sender, amount, readyAt);
    }

    /// Pays the sponsor what it asked back, or what is left of the bond if a slash took part of it meanwhile.
    function returnBond(address provider) external {
        if (sponsorOf[provider] != msg.sender) revert NotSponsor(provider, msg.sender);
        Pending memory request = bondReturnRequestOf[provider];
        if (request.amount == 0) revert NothingRequested(provider);
        if (block.timestamp < request.readyAt) revert WithdrawalNotReady(provider, request.readyAt);
        uint256 amount = _min(request.amount, bondOf[provider]);
        delete bondReturnRequestOf[provider];
        bondOf[provider] -= amount;
        totalStaked -= amount;
        emit BondReturned(provider, msg.sender, amount);
        _send(msg.sender, amount);
    }

    function _stake(address provider) private {
        if (msg.value == 0) revert ZeroAmount();
        stakeOf[provider] += msg.value;
        totalStaked += msg.value;
        emit Staked(provider, msg.value, stakeOf[provider]);
    }

    /// Starts the delay; a new request replaces the previous one and restarts the clock.
    function requestUnstake(uint256 amount) external {
        uint256 available = stakeOf[msg.sender];
        if (amount > available) revert InsufficientStake(msg.sender, available, amount);
        uint64 readyAt = _request(unstakeRequestOf, amount);
        emit UnstakeRequested(msg.sender, amount, readyAt);
    }

    /// Pays the requested amount, or what is left of the stake if a slash took part of it meanwhile.
    function unstake() external {
        uint256 amount = _release(unstakeRequestOf, stakeOf);
        totalStaked -= amount;
        emit Unstaked(msg.sender, amount);
        _send(msg.sender, amount);
    }

    function withdrawEarnings() external {
        uint256 amount = earningsOf[msg.sender];
        if (amount == 0) revert NoEarnings(msg.sender);
        earningsOf[msg.sender] = 0;
        totalEarnings -= amount;
        emit EarningsWithdrawn(msg.sender, amount);
        _send(msg.sender, amount);
    }

    // ---------------------------------------------------------------- clients

    function deposit() external payable {
        if (msg.value == 0) revert ZeroAmount();
        escrowOf[msg.sender] += msg.value;
        totalEscrowed += msg.value;
        emit Deposited(msg.sender, msg.value, escrowOf[msg.sender]);
    }

    /// Starts the delay; a new request replaces the previous one and restarts the clock.
    function requestWithdrawal(uint256 amount) external {
        uint256 available = escrowOf[msg.sender];
        if (amount > available) revert InsufficientEscrow(msg.sender, available, amount);
        uint64 readyAt = _request(withdrawalRequestOf, amount);
        emit WithdrawalRequested(msg.sender, amount, readyAt);
    }

    /// Pays the requested amount, or what escrow is left if vouchers were redeemed meanwhile.
    function withdraw() external {
        uint256 amount = _release(withdrawalRequestOf, escrowOf);
        totalEscrowed -= amount;
        emit Withdrawn(msg.sender, amount);
        _send(msg.sender, amount);
    }

    // ---------------------------------------------------------------- coordinator

    /// Moves what the voucher adds over the last redeemed one from the client's escrow to the pool.
    function redeem(Voucher calldata voucher, bytes calldata signature) external onlyCoordinator {
        address signer = _recover(voucherDigest(voucher), signature);
        if (signer != voucher.client) revert VoucherSignerMismatch(voucher.client, signer);
        uint256 redeemed = redeemedOf[voucher.client];
        if (voucher.cumulativeAmount <= redeemed) {
            revert VoucherNotAboveRedeemed(voucher.client, voucher.cumulativeAmount, redeemed);
        }
        uint256 amount = voucher.cumulativeAmount - redeemed;
        uint256 escrow = escrowOf[voucher.client];
        if (amount > escrow) revert InsufficientEscrow(voucher.client, escrow, amount);
        redeemedOf[voucher.client] = voucher.cumulativeAmount;
        escrowOf[voucher.client] = escrow - amount;
        totalEscrowed -= amount;
        pool += amount;
        emit VoucherRedeemed(voucher.client, voucher.cumulativeAmount, amount);
    }

    /// Credits earnings from the pool. A batch id is paid at most once: replaying one reverts.
    function payoutBatch(bytes32 batchId, address[] calldata providers, uint256[] calldata amounts)
        external
        onlyCoordinator
    {
        if (batchPaid[batchId]) revert BatchAlreadyPaid(batchId);
        if (providers.length != amounts.length) revert BatchLengthMismatch(providers.length, amounts.length);
        uint256 total;
        for (uint256 i = 0; i < amounts.length; i++) total += amounts[i];
        if (total > pool) revert PoolShort(pool, total);
        batchPaid[batchId] = true;
        pool -= total;
        totalEarnings += total;
        for (uint256 i = 0; i < providers.length; i++) {
            if (providers[i] == address(0)) revert ZeroAddress();
            earningsOf[providers[i]] += amounts[i];
            emit EarningsCredited(batchId, providers[i], amounts[i]);
        }
        emit BatchPaid(batchId, total, providers.length);
    }

    // ---------------------------------------------------------------- validator

    /// Sends up to `amount` of what backs the provider, its own stake first and then its sponsored
    /// bond (waiting requests included), to the treasury. Slashing more than there is takes all
    /// of it, so a slash never fails on a race with an unstake or a bond's return.
    function slash(address provider, uint256 amount, bytes32 evidenceHash, bytes calldata peerId)
        external
        onlyValidator
    {
        if (amount == 0) revert ZeroAmount();
        uint256 own = stakeOf[provider];
        uint256 bond = bondOf[provider];
        if (own + bond == 0) revert InsufficientStake(provider, 0, amount);
        uint256 slashed = _min(amount, own + bond);
        uint256 fromOwn = _min(slashed, own);
        stakeOf[provider] = own - fromOwn;
        bondOf[provider] = bond - (slashed - fromOwn);
        totalStaked -= slashed;
        totalSlashed += slashed;
        emit Slashed(provider, slashed, evidenceHash, peerId);
        _send(treasury, slashed);
    }

    // ---------------------------------------------------------------- views

    function domainSeparator() public view returns (bytes32) {
        // Computed per call, so a chain fork (new chainid) cannot replay vouchers from the old chain.
        return keccak256(abi.encode(DOMAIN_TYPEHASH, NAME_HASH, VERSION_HASH, block.chainid, address(this)));
    }

    function voucherDigest(Voucher calldata voucher) public view returns (bytes32) {
        bytes32 structHash = keccak256(abi.encode(VOUCHER_TYPEHASH, voucher.client, voucher.cumulativeAmount));
        return keccak256(abi.encodePacked("\x19\x01", domainSeparator(), structHash));
    }

    function isBatchPaid(bytes32 batchId) external view returns (bool) {
        return batchPaid[batchId];
    }

    /// Everything the contract knows about one address, in one call.
    function balances(address account) external view returns (AccountBalances memory) {
        Pending memory u = unstakeRequestOf[account];
        Pending memory w = withdrawalRequestOf[account];
        return AccountBalances({
            stake: stakeOf[account],
            unstakeRequested: u.amount,
            unstakeReadyAt: u.readyAt,
            escrow: escrowOf[account],
            withdrawalRequested: w.amount,
            withdrawalReadyAt: w.readyAt,
            redeemed: redeemedOf[account],
            earnings: earningsOf[account],
            bond: bondOf[account],
            sponsor: sponsorOf[account]
        });
    }

    /// What the contract owes; equals address(this).balance (the conservation invariant).
    function liabilities() external view returns (uint256) {
        return totalStaked + totalEscrowed + pool + totalEarnings;
    }

    // ---------------------------------------------------------------- internals

    function _recover(bytes32 digest, bytes calldata signature) private pure returns (address) {
        if (signature.length != 65) revert InvalidSignature();
        bytes32 r = bytes32(signature[0:32]);
        bytes32 s = bytes32(signature[32:64]);
        uint8 v = uint8(signature[64]);
        if (v < 27) v += 27;
        if (uint256(s) > HALF_N || (v != 27 && v != 28)) revert InvalidSignature();
        address signer = ecrecover(digest, v, r, s);
        if (signer == address(0)) revert InvalidSignature();
        return signer;
    }

    /// Records the caller's request to take `amount` out (of stake or escrow) after the delay, in
    /// place of any earlier one; returns when it can be paid. The caller has checked the amount
    /// against its balance, each with its own error.
    function _request(mapping(address => Pending) storage requests, uint256 amount) private returns (uint64 readyAt) {
        if (amount == 0) revert ZeroAmount();
        readyAt = uint64(block.timestamp) + withdrawDelay;
        requests[msg.sender] = Pending(amount, readyAt);
    }

    /// Ends the caller's request once its delay is over and takes what it pays out of `balances`:
    /// the requested amount, or what is left of the balance if it shrank meanwhile. The caller
    /// lowers its total, emits its event and sends.
    function _release(mapping(address => Pending) storage requests, mapping(address => uint256) storage balances)
        private
        returns (uint256 amount)
    {
        Pending memory request = requests[msg.sender];
        if (request.amount == 0) revert NothingRequested(msg.sender);
        if (block.timestamp < request.readyAt) revert WithdrawalNotReady(msg.sender, request.readyAt);
        amount = _min(request.amount, balances[msg.sender]);
        delete requests[msg.sender];
        balances[msg.sender] -= amount;
    }

    function _send(address to, uint256 amount) private {
        if (amount == 0) return;
        (bool ok,) = to.call{value: amount}("");
        if (!ok) revert TransferFailed(to, amount);
    }

    function _min(uint256 a, uint256 b) private pure returns (uint256) {
        return a < b ? a : b;
    }
}
