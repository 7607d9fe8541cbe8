// The operator's pages of the console: the tenant, API tokens, plugins
// with their permissions, pending approvals with the permission diff,
// quarantine, audit search and deletion requests. Every page reads and
// changes the tenant through the same `/v1` API as the CLI, with the
// console's session cookie; the server checks every role again.

export const strings = {
  en: {
    navTenant: 'Tenant',
    navTokens: 'API tokens',
    navPlugins: 'Plugins',
    navApprovals: 'Pending approvals',
    navQuarantine: 'Quarantine',
    navAudit: 'Audit trail',
    navDeletions: 'Deletion requests',
    yes: 'Yes',
    no: 'No',
    none: 'None',
    nothing: 'Nothing to show.',
    refresh: 'Refresh',
    cancel: 'Cancel',
    // tenant
    tenantIntro: 'The settings of {tenant} and what it holds. Tenants and their settings are changed from the command line.',
    settings: 'Settings',
    purposes: 'Purposes people can consent to',
    retention: 'Retention a person may choose',
    retentionDays: '{min} to {max} days (default {default})',
    deletionDeadline: 'Deadline of a deletion request',
    days: '{n} {n:day|days}',
    identityRules: 'Identity rules',
    countryCode: 'Default country code: +{code}',
    noCountryCode: 'No default country code',
    gmail: 'Gmail addresses canonical: {value}',
    rulesLocked: 'Locked (the tenant holds subjects)',
    mergeOn: 'Subjects merge on',
    counts: 'What the tenant holds',
    activeTokens: 'Active API tokens',
    deletionRequests: 'Deletion requests',
    openDeletions: 'Deletion requests not completed',
    suppressed: 'Suppressed identities',
    auditEntries: 'Audit entries',
    schema: 'Schema',
    schemaTraits: 'Traits',
    schemaEvents: 'Event types',
    eventsStrict: 'Events of types not listed are refused: {value}',
    colName: 'Name',
    colClass: 'Class',
    colType: 'Type',
    colPii: 'PII class',
    colAllowed: 'Allowed values',
    colProperties: 'Properties',
    colStrict: 'Strict',
    // tokens
    tokensIntro: 'Each token belongs to this tenant and has one role. A token is shown once, when it is created; only its hash is stored.',
    newToken: 'New token',
    tokenRole: 'Role',
    tokenLabel: 'What it is for',
    tokenLabelHint: '1 to 64 characters, e.g. “nightly import”.',
    create: 'Create token',
    createdToken: 'Token “{name}” created. Copy it now: it will not be shown again.',
    copy: 'Copy',
    copied: 'Copied to the clipboard.',
    copyFailed: 'The browser did not allow copying; select the token and copy it by hand.',
    colId: 'Id',
    colRole: 'Role',
    colCreated: 'Created',
    colCreatedBy: 'Created by',
    colState: 'State',
    colActions: 'Actions',
    revoke: 'Revoke',
    revokeToken: 'Revoke token {name}',
    revokeConfirm: 'Revoke the token “{name}” ({id})? Everything using it stops working at once.',
    revokeOwn: 'This is the token you signed in with: revoking it signs you out.',
    revoked: 'Revoked',
    active: 'Active',
    tokenRevoked: 'Token {id} revoked.',
    yourToken: '(this session)',
    error_needs_label: 'Say what the token is for (1 to 64 characters).',
    role_ingest: 'ingest',
    role_portal: 'portal',
    roleHint_operator: 'runs the tenant: tokens, plugins, subjects, audit',
    roleHint_marketer: 'ingests data, builds segments and campaigns',
    roleHint_ingest: 'only sends events (may sit in a web page or an app)',
    roleHint_analyst: 'reads settings, plugins, segment sizes and the audit trail',
    roleHint_portal: 'the subject portal backend: issues subject tokens',
    // plugins
    pluginsIntro: 'The plugins installed for this tenant, the version that runs and what each was granted.',
    colVersion: 'Version',
    colKind: 'Kind',
    colStatus: 'Status',
    colGranted: 'Granted',
    status_active: 'Active',
    status_pending: 'Pending approval',
    status_quarantined: 'Quarantined',
    status_failed: 'Failed to load',
    kind_connector: 'connector',
    kind_segment: 'segment',
    kind_strategy: 'strategy',
    grantSummary: '{traits} {traits:trait|traits}, {events} event {events:type|types}, {purposes} {purposes:purpose|purposes}',
    builtIn: 'built in',
    noPlugins: 'No plugins are installed.',
    back: 'Back to the plugins',
    pluginTitle: 'Plugin {name}',
    description: 'Description',
    publisher: 'Publisher',
    signature: 'Signature',
    signature_built_in: 'Built into the server',
    signature_verified: 'Verified (key {key})',
    signatureVerified: 'Verified',
    colBundle: 'Bundle',
    signature_unsigned_development: 'UNSIGNED (development flag)',
    installedAt: 'Installed',
    witVersion: 'Contract version',
    permissionsGranted: 'Permissions granted',
    permissionsRequested: 'Permissions requested',
    perm_traits: 'Traits',
    perm_events: 'Event types',
    perm_pii: 'PII classes',
    perm_purposes: 'Purposes',
    perm_outbound_hosts: 'Outbound hosts',
    perm_state_quota: 'State quota',
    bytes: '{n} bytes',
    limits: 'Limits',
    limit_fuel_base: 'Fuel per call',
    limit_fuel_per_unit: 'Fuel per item',
    limit_time_base_ms: 'Time per call (ms)',
    limit_time_per_unit_us: 'Time per item (µs)',
    limit_time_per_unit_ms: 'Time per item (ms)',
    limit_memory_bytes: 'Memory (bytes)',
    limit_table_elements: 'Table elements',
    limit_instances: 'Instances',
    limit_host_calls: 'Host calls',
    limit_guest_bytes: 'Bytes to the host',
    limit_output_bytes: 'Output (bytes)',
    limit_log_lines: 'Log lines',
    usage: 'Usage since start',
    usageLine: '{calls} calls, {fuel} fuel, {wall} ms, {traps} traps',
    versions: 'Versions',
    colUploaded: 'Uploaded',
    colApproved: 'Approved',
    running: 'Running',
    pendingBadge: 'Pending',
    loadError: 'It could not be loaded: {error}',
    rollback: 'Roll back to the previous version',
    rollbackConfirm: 'Roll {name} back to its previous approved version?',
    rolledBack: '{name} rolled back to {version}.',
    reviewPending: 'Review the pending version',
    // approvals
    approvalsIntro: 'Plugins waiting for an operator: a new install, or an upgrade that asks for more than the running version was granted. The running version keeps serving until you approve.',
    noApprovals: 'Nothing is waiting for approval.',
    pendingTitle: '{name}: {from} → {to}',
    pendingInstall: '{name}: install {to}',
    uploaded: 'Uploaded {time} by {by}',
    bundle: 'Bundle {version}, digest {digest}',
    diffTitle: 'What changes',
    diffLegend: 'Added: asked for now, not granted before. Removed: no longer asked for. Unchanged: asked for and granted before.',
    mark_added: '+ Added',
    mark_removed: '− Removed',
    mark_same: '= Unchanged',
    quotaChange: 'State quota: {from} → {to} bytes',
    limitChange: '{name}: {from} → {to}',
    noChange: 'No change.',
    approve: 'Approve',
    approveLabel: 'Approve {name} {version}',
    reject: 'Reject',
    rejectLabel: 'Reject {name} {version}',
    approveConfirm: 'Approve {name} {version} with everything it asks for? It goes live at once.',
    rejectConfirm: 'Reject {name} {version}? It is discarded; the running version stays.',
    approved: '{name} {version} approved and live.',
    rejected: '{name} {version} rejected.',
    rejectReason: 'Why (kept in the audit trail)',
    // quarantine
    quarantineIntro: 'A quarantined plugin’s calls are refused until an operator releases it. The runtime quarantines a plugin that traps repeatedly.',
    quarantined: 'Quarantined plugins',
    noQuarantined: 'No plugin is quarantined.',
    quarantineBy: 'Since {time}, by {by}: {reason}',
    release: 'Release',
    releaseLabel: 'Release {name}',
    released: '{name} released.',
    quarantineOne: 'Quarantine a plugin',
    plugin: 'Plugin',
    reason: 'Reason',
    reasonHint: 'Kept in the audit trail and shown with the plugin (up to 500 characters).',
    quarantine: 'Quarantine',
    quarantinedNow: '{name} quarantined.',
    error_needs_reason: 'Give a reason: it is kept in the audit trail.',
    noActivePlugins: 'No plugin can be quarantined now.',
    // audit
    auditIntro: 'The tenant’s hash-chained audit trail. Filters are combined; leave one empty to ignore it.',
    actor: 'Actor',
    actorHint: 'A role (operator), an id (token:…) or role:id.',
    action: 'Action',
    actionHint: 'Exact (plugin.approve) or a prefix ending in a dot (plugin.).',
    subject: 'Subject',
    since: 'From',
    until: 'Until',
    search: 'Search',
    clear: 'Clear',
    colSeq: '#',
    colTime: 'Time',
    colActor: 'Actor',
    colAction: 'Action',
    colSubject: 'Subject',
    colPlugin: 'Plugin',
    colDetail: 'Detail',
    first: 'First page',
    next: 'Next page',
    noEntries: 'No entries match.',
    scannedMore: 'No entries matched in this part of the trail; there are more to search.',
    error_bad_time: 'The time “{value}” is not a date and time.',
    // deletions
    deletionsIntro: 'Requests to erase a person, newest first, with their legal deadline.',
    statusFilter: 'Status',
    allStatuses: 'All',
    deletion_pending: 'Pending',
    deletion_keys_destroyed: 'Keys destroyed',
    deletion_completed: 'Completed',
    colRequested: 'Requested',
    colDeadline: 'Deadline',
    colLeft: 'Time left',
    colReceipt: 'Receipt',
    overdue: 'Overdue',
    overdueBy: 'Overdue by {time}',
    dueIn: 'Due in {time}',
    metDeadline: 'Done {time} (deadline met)',
    missedDeadline: 'Done {time} (after the deadline)',
    noDeletions: 'No deletion requests.',
    more: 'Older requests',
    overdueCount: '{n} {n:request is|requests are} overdue.',
  },
  'zh-CN': {
    navTenant: '租户',
    navTokens: 'API 令牌',
    navPlugins: '插件',
    navApprovals: '待审批',
    navQuarantine: '隔离',
    navAudit: '审计记录',
    navDeletions: '删除请求',
    yes: '是',
    no: '否',
    none: '无',
    nothing: '暂无内容。',
    refresh: '刷新',
    cancel: '取消',
    tenantIntro: '{tenant} 的设置及其保存的数据。租户及其设置通过命令行修改。',
    settings: '设置',
    purposes: '个人可同意的用途',
    retention: '个人可选择的保留期',
    retentionDays: '{min} 至 {max} 天（默认 {default} 天）',
    deletionDeadline: '删除请求的期限',
    days: '{n} 天',
    identityRules: '身份规则',
    countryCode: '默认国家代码：+{code}',
    noCountryCode: '无默认国家代码',
    gmail: 'Gmail 地址规范化：{value}',
    rulesLocked: '已锁定（租户已有数据主体）',
    mergeOn: '合并数据主体的依据',
    counts: '租户保存的内容',
    activeTokens: '有效的 API 令牌',
    deletionRequests: '删除请求',
    openDeletions: '未完成的删除请求',
    suppressed: '被抑制的身份',
    auditEntries: '审计条目',
    schema: '数据模式',
    schemaTraits: '属性',
    schemaEvents: '事件类型',
    eventsStrict: '拒绝未列出类型的事件：{value}',
    colName: '名称',
    colClass: '类别',
    colType: '类型',
    colPii: '个人信息类别',
    colAllowed: '允许的值',
    colProperties: '属性',
    colStrict: '严格',
    tokensIntro: '每个令牌属于此租户，并有一个角色。令牌只在创建时显示一次；服务器只保存其哈希值。',
    newToken: '新建令牌',
    tokenRole: '角色',
    tokenLabel: '用途',
    tokenLabelHint: '1 至 64 个字符，例如“夜间导入”。',
    create: '创建令牌',
    createdToken: '已创建令牌“{name}”。请立即复制：它不会再次显示。',
    copy: '复制',
    copied: '已复制到剪贴板。',
    copyFailed: '浏览器不允许复制；请手动选中令牌并复制。',
    colId: '编号',
    colRole: '角色',
    colCreated: '创建时间',
    colCreatedBy: '创建者',
    colState: '状态',
    colActions: '操作',
    revoke: '吊销',
    revokeToken: '吊销令牌 {name}',
    revokeConfirm: '吊销令牌“{name}”（{id}）？使用它的一切将立即停止工作。',
    revokeOwn: '这是您登录所用的令牌：吊销后您将退出登录。',
    revoked: '已吊销',
    active: '有效',
    tokenRevoked: '令牌 {id} 已吊销。',
    yourToken: '（本会话）',
    error_needs_label: '请说明令牌的用途（1 至 64 个字符）。',
    role_ingest: '数据接入',
    role_portal: '门户',
    roleHint_operator: '管理租户：令牌、插件、数据主体、审计',
    roleHint_marketer: '导入数据，创建人群和营销活动',
    roleHint_ingest: '只能发送事件（可放在网页或应用中）',
    roleHint_analyst: '查看设置、插件、人群规模和审计记录',
    roleHint_portal: '数据主体门户后端：签发数据主体令牌',
    pluginsIntro: '此租户安装的插件、正在运行的版本以及各自获得的授权。',
    colVersion: '版本',
    colKind: '种类',
    colStatus: '状态',
    colGranted: '已授权',
    status_active: '运行中',
    status_pending: '待审批',
    status_quarantined: '已隔离',
    status_failed: '加载失败',
    kind_connector: '连接器',
    kind_segment: '人群',
    kind_strategy: '策略',
    grantSummary: '{traits} 个属性，{events} 种事件，{purposes} 个用途',
    builtIn: '内置',
    noPlugins: '尚未安装插件。',
    back: '返回插件列表',
    pluginTitle: '插件 {name}',
    description: '说明',
    publisher: '发布者',
    signature: '签名',
    signature_built_in: '内置于服务器',
    signature_verified: '已验证（密钥 {key}）',
    signatureVerified: '已验证',
    colBundle: '软件包',
    signature_unsigned_development: '未签名（开发模式）',
    installedAt: '安装时间',
    witVersion: '接口版本',
    permissionsGranted: '已授予的权限',
    permissionsRequested: '申请的权限',
    perm_traits: '属性',
    perm_events: '事件类型',
    perm_pii: '个人信息类别',
    perm_purposes: '用途',
    perm_outbound_hosts: '外部主机',
    perm_state_quota: '状态配额',
    bytes: '{n} 字节',
    limits: '限制',
    limit_fuel_base: '每次调用的燃料',
    limit_fuel_per_unit: '每项的燃料',
    limit_time_base_ms: '每次调用的时间（毫秒）',
    limit_time_per_unit_us: '每项的时间（微秒）',
    limit_time_per_unit_ms: '每项的时间（毫秒）',
    limit_memory_bytes: '内存（字节）',
    limit_table_elements: '表元素',
    limit_instances: '实例数',
    limit_host_calls: '主机调用次数',
    limit_guest_bytes: '传给主机的字节',
    limit_output_bytes: '输出（字节）',
    limit_log_lines: '日志行数',
    usage: '启动以来的用量',
    usageLine: '{calls} 次调用，{fuel} 燃料，{wall} 毫秒，{traps} 次陷阱',
    versions: '版本',
    colUploaded: '上传时间',
    colApproved: '批准时间',
    running: '运行中',
    pendingBadge: '待审批',
    loadError: '无法加载：{error}',
    rollback: '回滚到上一个版本',
    rollbackConfirm: '将 {name} 回滚到上一个已批准的版本？',
    rolledBack: '{name} 已回滚到 {version}。',
    reviewPending: '审查待批准的版本',
    approvalsIntro: '等待运营管理员处理的插件：新安装，或申请的权限超出当前版本授权的升级。批准之前，当前版本继续运行。',
    noApprovals: '没有待审批的插件。',
    pendingTitle: '{name}：{from} → {to}',
    pendingInstall: '{name}：安装 {to}',
    uploaded: '{time} 由 {by} 上传',
    bundle: '软件包 {version}，摘要 {digest}',
    diffTitle: '变化内容',
    diffLegend: '新增：现在申请、此前未授权。移除：不再申请。不变：申请且此前已授权。',
    mark_added: '+ 新增',
    mark_removed: '− 移除',
    mark_same: '= 不变',
    quotaChange: '状态配额：{from} → {to} 字节',
    limitChange: '{name}：{from} → {to}',
    noChange: '没有变化。',
    approve: '批准',
    approveLabel: '批准 {name} {version}',
    reject: '拒绝',
    rejectLabel: '拒绝 {name} {version}',
    approveConfirm: '批准 {name} {version} 的全部申请？它将立即生效。',
    rejectConfirm: '拒绝 {name} {version}？它将被丢弃，当前版本保持运行。',
    approved: '{name} {version} 已批准并运行。',
    rejected: '{name} {version} 已拒绝。',
    rejectReason: '原因（记入审计记录）',
    quarantineIntro: '被隔离插件的调用会被拒绝，直到运营管理员解除隔离。运行时会自动隔离反复出错的插件。',
    quarantined: '已隔离的插件',
    noQuarantined: '没有被隔离的插件。',
    quarantineBy: '自 {time} 起，由 {by} 隔离：{reason}',
    release: '解除隔离',
    releaseLabel: '解除隔离 {name}',
    released: '{name} 已解除隔离。',
    quarantineOne: '隔离插件',
    plugin: '插件',
    reason: '原因',
    reasonHint: '记入审计记录并随插件显示（最多 500 个字符）。',
    quarantine: '隔离',
    quarantinedNow: '{name} 已隔离。',
    error_needs_reason: '请填写原因：它将记入审计记录。',
    noActivePlugins: '目前没有可隔离的插件。',
    auditIntro: '租户的哈希链审计记录。筛选条件同时生效；留空表示不筛选。',
    actor: '操作者',
    actorHint: '角色（operator）、编号（token:…）或 角色:编号。',
    action: '操作',
    actionHint: '完整名称（plugin.approve）或以点结尾的前缀（plugin.）。',
    subject: '数据主体',
    since: '起始',
    until: '截止',
    search: '搜索',
    clear: '清除',
    colSeq: '#',
    colTime: '时间',
    colActor: '操作者',
    colAction: '操作',
    colSubject: '数据主体',
    colPlugin: '插件',
    colDetail: '详情',
    first: '第一页',
    next: '下一页',
    noEntries: '没有匹配的条目。',
    scannedMore: '这一段记录中没有匹配的条目；还有更多记录可以搜索。',
    error_bad_time: '“{value}”不是有效的日期和时间。',
    deletionsIntro: '删除个人数据的请求，最新的在前，附法定期限。',
    statusFilter: '状态',
    allStatuses: '全部',
    deletion_pending: '待处理',
    deletion_keys_destroyed: '密钥已销毁',
    deletion_completed: '已完成',
    colRequested: '请求时间',
    colDeadline: '期限',
    colLeft: '剩余时间',
    colReceipt: '回执',
    overdue: '已逾期',
    overdueBy: '已逾期 {time}',
    dueIn: '{time}后到期',
    metDeadline: '{time} 完成（按期）',
    missedDeadline: '{time} 完成（逾期）',
    noDeletions: '没有删除请求。',
    more: '更早的请求',
    overdueCount: '{n} 个请求已逾期。',
  },
};

const OPERATOR = ['operator'];
const READERS = ['operator', 'marketer', 'analyst'];
const AUDIT_READERS = ['operator', 'analyst'];
const TOKEN_ROLES = ['operator', 'marketer', 'ingest', 'analyst', 'portal'];
const PERMISSIONS = ['traits', 'events', 'pii', 'purposes', 'outbound_hosts'];
const AUDIT_PAGE = 50;
const DELETIONS_PAGE = 50;

export const pages = [
  { id: 'tenant', nav: 'navTenant', roles: READERS, render: tenantPage },
  { id: 'tokens', nav: 'navTokens', roles: OPERATOR, render: tokensPage },
  { id: 'plugins', nav: 'navPlugins', roles: READERS, render: pluginsPage },
  { id: 'approvals', nav: 'navApprovals', roles: OPERATOR, render: approvalsPage },
  { id: 'quarantine', nav: 'navQuarantine', roles: OPERATOR, render: quarantinePage },
  { id: 'audit', nav: 'navAudit', roles: AUDIT_READERS, render: auditPage },
  { id: 'deletions', nav: 'navDeletions', roles: OPERATOR, render: deletionsPage },
];

// ---- helpers ---------------------------------------------------------------

const enc = encodeURIComponent;

function text(value) {
  if (value === null || value === undefined || value === '') return '—';
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

/** A table whose cells are labelled by their column on a phone. */
function table(ctx, columns, rows, rowAttributes) {
  const { h, t } = ctx;
  if (rows.length === 0) return h('p', { class: 'empty' }, t('nothing'));
  return h(
    'div',
    { class: 'table-wrap' },
    h(
      'table',
      { class: 'stack' },
      h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col' }, c)))),
      h(
        'tbody',
        {},
        rows.map((row, r) =>
          h(
            'tr',
            (rowAttributes && rowAttributes(r)) || {},
            row.map((cell, i) => h('td', { 'data-label': columns[i] }, cell)),
          ),
        ),
      ),
    ),
  );
}

function facts(ctx, pairs) {
  const { h } = ctx;
  return h(
    'dl',
    { class: 'facts' },
    pairs.filter(Boolean).flatMap(([term, value]) => [h('dt', {}, term), h('dd', {}, value)]),
  );
}

function head(ctx, title, ...tools) {
  const { h } = ctx;
  return h('div', { class: 'page-head' }, h('h2', { tabindex: '-1' }, title), tools.length ? h('div', { class: 'row' }, tools) : null);
}

function tr(ctx, prefix, value) {
  const key = prefix + value;
  return ctx.i18n.has(key) ? ctx.t(key) : value;
}

function badge(ctx, kind, label) {
  return ctx.h('span', { class: 'badge ' + kind }, label);
}

function statusBadge(ctx, status) {
  return badge(ctx, status, tr(ctx, 'status_', status));
}

function signatureText(ctx, signature, key) {
  if (signature === 'verified') return key ? ctx.t('signature_verified', { key }) : ctx.t('signatureVerified');
  return tr(ctx, 'signature_', signature);
}

function list(ctx, items) {
  if (!items || items.length === 0) return ctx.h('span', { class: 'empty' }, ctx.t('none'));
  return items.join(', ');
}

/** Runs a change: a message when it worked, the error in the alert region
 *  when not, then `after`. The button is disabled while it runs. */
async function change(ctx, button, work, after) {
  if (button) button.disabled = true;
  try {
    const message = await work();
    if (message) ctx.notice(message);
    if (after) await after();
  } catch (error) {
    ctx.fail(error);
  } finally {
    if (button) button.disabled = false;
  }
}

/** A span of time in words ("3 days", "5 hours"), for deadlines. */
function duration(ctx, ms) {
  const minutes = Math.round(Math.abs(ms) / 60000);
  const format = (value, unit) =>
    new Intl.NumberFormat(ctx.i18n.lang, { style: 'unit', unit, unitDisplay: 'long' }).format(value);
  if (minutes < 60) return format(Math.max(1, minutes), 'minute');
  const hours = Math.round(minutes / 60);
  if (hours < 48) return format(hours, 'hour');
  return format(Math.round(hours / 24), 'day');
}

// ---- tenant ----------------------------------------------------------------

async function tenantPage(ctx) {
  const { api, h, t, i18n } = ctx;
  const [tenant, schema] = await Promise.all([api.get('/v1/tenant'), api.get('/v1/schema')]);
  const s = tenant.settings;
  const c = tenant.counts;
  const rules = s.identity_rules;
  return h(
    'section',
    { class: 'card' },
    head(ctx, t('navTenant') + ': ' + tenant.id),
    h('p', {}, t('tenantIntro', { tenant: tenant.id })),
    h('h3', {}, t('settings')),
    facts(ctx, [
      [t('purposes'), list(ctx, s.purposes)],
      [
        t('retention'),
        t('retentionDays', {
          min: s.retention.min_days,
          max: s.retention.max_days,
          default: s.retention.default_days,
        }),
      ],
      [t('deletionDeadline'), t('days', { n: s.deletion_deadline_days })],
      [
        t('identityRules'),
        [
          rules.default_country_code ? t('countryCode', { code: rules.default_country_code }) : t('noCountryCode'),
          '; ',
          t('gmail', { value: t(rules.canonical_gmail ? 'yes' : 'no') }),
          rules.locked ? ['; ', t('rulesLocked')] : null,
        ],
      ],
      [t('mergeOn'), list(ctx, s.merge_on)],
    ]),
    h('h3', {}, t('counts')),
    facts(ctx, [
      [t('activeTokens'), i18n.number(c.active_tokens)],
      [t('deletionRequests'), i18n.number(c.deletion_requests)],
      [t('openDeletions'), i18n.number(c.open_deletion_requests)],
      [t('suppressed'), i18n.number(c.suppressed_identities)],
      [t('auditEntries'), i18n.number(c.audit_entries)],
    ]),
    h('h3', {}, t('schemaTraits')),
    table(
      ctx,
      [t('colName'), t('colClass'), t('colType'), t('colPii'), t('colAllowed')],
      schema.traits.map((tr_) => [
        h('span', { class: 'mono' }, tr_.name),
        tr_.class,
        tr_.type,
        text(tr_.pii_class),
        tr_.allowed && tr_.allowed.length ? tr_.allowed.map(text).join(', ') : '—',
      ]),
    ),
    h('h3', {}, t('schemaEvents')),
    h('p', {}, t('eventsStrict', { value: t(schema.events_strict ? 'yes' : 'no') })),
    table(
      ctx,
      [t('colName'), t('colProperties'), t('colStrict')],
      schema.events.map((e) => [
        h('span', { class: 'mono' }, e.type),
        Object.keys(e.properties || {}).join(', ') || '—',
        t(e.strict ? 'yes' : 'no'),
      ]),
    ),
  );
}

// ---- tokens ----------------------------------------------------------------

async function tokensPage(ctx) {
  const { api, h, t, i18n, session } = ctx;
  const section = h('section', { class: 'card' });
  const created = h('div', { id: 'created-token', 'aria-live': 'polite' });
  const listHolder = h('div', {});

  async function reload() {
    const answer = await api.get('/v1/tokens');
    const tokens = [...answer.tokens].sort((a, b) => b.created_at_ms - a.created_at_ms);
    ctx.fill(
      listHolder,
      table(
        ctx,
        [t('colName'), t('colRole'), t('colId'), t('colCreated'), t('colCreatedBy'), t('colState'), t('colActions')],
        tokens.map((token) => [
          [token.name, token.id === session.token_id ? [' ', h('span', { class: 'hint' }, t('yourToken'))] : null],
          tr(ctx, 'role_', token.role),
          h('span', { class: 'mono' }, token.id),
          i18n.date(token.created_at_ms),
          h('span', { class: 'mono' }, token.created_by),
          token.revoked
            ? badge(ctx, 'muted', t('revoked') + (token.revoked_at_ms ? ' ' + i18n.date(token.revoked_at_ms) : ''))
            : badge(ctx, 'active', t('active')),
          token.revoked
            ? ''
            : h(
                'button',
                {
                  type: 'button',
                  class: 'secondary',
                  'aria-label': t('revokeToken', { name: token.name }),
                  onclick: (event) => revoke(token, event.currentTarget),
                },
                t('revoke'),
              ),
        ]),
      ),
    );
  }

  async function revoke(token, button) {
    const own = token.id === session.token_id;
    const question = t('revokeConfirm', { name: token.name, id: token.id }) + (own ? '\n\n' + t('revokeOwn') : '');
    if (!window.confirm(question)) return;
    await change(
      ctx,
      button,
      async () => {
        await api.delete('/v1/tokens/' + enc(token.id));
        return t('tokenRevoked', { id: token.id });
      },
      // Revoking one's own token ends the session: the next read says so.
      own ? () => api.get('/console/api/session') : reload,
    );
  }

  const role = h(
    'select',
    { id: 'token-role', name: 'role' },
    TOKEN_ROLES.map((r) => h('option', { value: r }, tr(ctx, 'role_', r) + ' — ' + t('roleHint_' + r))),
  );
  const label = h('input', {
    id: 'token-label',
    name: 'name',
    maxlength: '64',
    required: true,
    autocomplete: 'off',
    'aria-describedby': 'token-label-hint',
  });
  const form = h(
    'form',
    { novalidate: true, class: 'toolbar' },
    h('div', { class: 'field' }, h('label', { for: 'token-role' }, t('tokenRole')), role),
    h(
      'div',
      { class: 'field' },
      h('label', { for: 'token-label' }, t('tokenLabel')),
      label,
      h('p', { class: 'hint', id: 'token-label-hint' }, t('tokenLabelHint')),
    ),
    h('button', { type: 'submit' }, t('create')),
  );
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const name = label.value.trim();
    if (!name || name.length > 64) {
      label.focus();
      ctx.fail(t('error_needs_label'));
      return;
    }
    await change(
      ctx,
      form.querySelector('button[type=submit]'),
      async () => {
        const made = await api.post('/v1/tokens', { role: role.value, name });
        label.value = '';
        showCreated(made);
        return null;
      },
      reload,
    );
  });

  function showCreated(made) {
    const code = h('code', { class: 'mono', id: 'new-token-value' }, made.token);
    const copy = h('button', { type: 'button', class: 'secondary' }, t('copy'));
    copy.addEventListener('click', async () => {
      try {
        await navigator.clipboard.writeText(made.token);
        ctx.notice(t('copied'));
      } catch {
        const range = document.createRange();
        range.selectNodeContents(code);
        const selection = window.getSelection();
        selection.removeAllRanges();
        selection.addRange(range);
        ctx.notice(t('copyFailed'));
      }
    });
    ctx.fill(
      created,
      h('p', {}, t('createdToken', { name: made.name })),
      h('div', { class: 'secret' }, code, copy),
    );
    copy.focus();
  }

  await reload();
  ctx.fill(
    section,
    head(ctx, t('navTokens')),
    h('p', {}, t('tokensIntro')),
    h('h3', {}, t('newToken')),
    form,
    created,
    h('h3', {}, t('navTokens')),
    listHolder,
  );
  return section;
}

// ---- plugins ---------------------------------------------------------------

function grantSummary(ctx, plugin) {
  const g = plugin.granted;
  if (!g) return plugin.signature === 'built_in' ? ctx.t('builtIn') : '—';
  return ctx.t('grantSummary', {
    traits: (g.traits || []).length,
    events: (g.events || []).length,
    purposes: (g.purposes || []).length,
  });
}

async function pluginsPage(ctx, params) {
  if (params.length > 0) return pluginPage(ctx, params[0]);
  const { api, h, t } = ctx;
  const { plugins } = await api.get('/v1/plugins');
  return h(
    'section',
    { class: 'card' },
    head(ctx, t('navPlugins')),
    h('p', {}, t('pluginsIntro')),
    plugins.length === 0
      ? h('p', { class: 'empty' }, t('noPlugins'))
      : table(
          ctx,
          [t('colName'), t('colVersion'), t('colKind'), t('colStatus'), t('colGranted')],
          plugins.map((p) => [
            h('a', { href: '#/plugins/' + enc(p.name) }, p.name),
            [p.version, p.pending ? [' → ', p.pending.version] : null],
            tr(ctx, 'kind_', p.kind),
            [statusBadge(ctx, p.status), p.pending && p.status !== 'pending' ? [' ', badge(ctx, 'pending', t('pendingBadge'))] : null],
            grantSummary(ctx, p),
          ]),
        ),
  );
}

function permissionFacts(ctx, permissions) {
  const { t, i18n } = ctx;
  if (!permissions) return ctx.h('p', { class: 'empty' }, t('none'));
  return facts(ctx, [
    ...PERMISSIONS.map((key) => [t('perm_' + key), list(ctx, permissions[key])]),
    [t('perm_state_quota'), t('bytes', { n: i18n.number(permissions.state_quota || 0) })],
  ]);
}

async function pluginPage(ctx, name) {
  const { api, h, t, i18n, session } = ctx;
  const p = await api.get('/v1/plugins/' + enc(name));
  const operator = session.role === 'operator';
  const signature = signatureText(ctx, p.signature, p.key_id);
  const earlier = p.versions.some((v, i) => v.approved_at_ms && !v.active && i < p.versions.findIndex((x) => x.active));
  const tools = [];
  if (operator && p.pending) {
    tools.push(h('a', { class: 'button secondary', href: '#/approvals' }, t('reviewPending')));
  }
  if (operator && earlier) {
    const button = h('button', { type: 'button', class: 'secondary' }, t('rollback'));
    button.addEventListener('click', () => {
      if (!window.confirm(t('rollbackConfirm', { name: p.name }))) return;
      change(
        ctx,
        button,
        async () => {
          const after = await api.post('/v1/plugins/' + enc(p.name) + '/rollback');
          return t('rolledBack', { name: p.name, version: after.version });
        },
        () => ctx.go('#/plugins/' + enc(p.name)),
      );
    });
    tools.push(button);
  }
  return h(
    'section',
    { class: 'card' },
    h('p', {}, h('a', { href: '#/plugins' }, '← ' + t('back'))),
    head(ctx, t('pluginTitle', { name: p.name })),
    h('p', {}, statusBadge(ctx, p.status), ' ', p.description || ''),
    p.load_error ? h('p', { class: 'alert' }, t('loadError', { error: p.load_error })) : null,
    p.quarantine
      ? h('p', {}, t('quarantineBy', { time: i18n.date(p.quarantine.at_ms), by: p.quarantine.by, reason: p.quarantine.reason || '—' }))
      : null,
    tools.length ? h('div', { class: 'row' }, tools) : null,
    facts(ctx, [
      [t('colVersion'), p.version],
      [t('colKind'), tr(ctx, 'kind_', p.kind)],
      [t('witVersion'), p.wit_version],
      [t('publisher'), text(p.publisher)],
      [t('signature'), signature],
      [t('installedAt'), i18n.date(p.installed_at_ms)],
    ]),
    h('h3', {}, t('permissionsGranted')),
    permissionFacts(ctx, p.granted),
    p.requested ? [h('h3', {}, t('permissionsRequested')), permissionFacts(ctx, p.requested)] : null,
    h('h3', {}, t('limits')),
    p.limits
      ? facts(
          ctx,
          Object.entries(p.limits).map(([key, value]) => [tr(ctx, 'limit_', key), i18n.number(value)]),
        )
      : h('p', { class: 'empty' }, t('none')),
    p.usage
      ? [
          h('h3', {}, t('usage')),
          h(
            'p',
            {},
            t('usageLine', {
              calls: i18n.number(p.usage.calls),
              fuel: i18n.number(p.usage.fuel),
              wall: i18n.number(p.usage.wall_ms),
              traps: i18n.number(p.usage.traps),
            }),
          ),
        ]
      : null,
    h('h3', {}, t('versions')),
    table(
      ctx,
      [t('colVersion'), t('colBundle'), t('signature'), t('colUploaded'), t('colApproved'), t('colState')],
      [...p.versions].reverse().map((v) => [
        v.version,
        v.bundle_version,
        signatureText(ctx, v.signature, null),
        i18n.date(v.uploaded_at_ms),
        i18n.date(v.approved_at_ms),
        v.active ? badge(ctx, 'active', t('running')) : v.pending ? badge(ctx, 'pending', t('pendingBadge')) : '',
      ]),
    ),
  );
}

// ---- approvals -------------------------------------------------------------

/** The diff of one permission category: every item marked added, removed
 *  or unchanged, in words and symbols, not by colour alone. */
function diffItems(ctx, key, change, requested) {
  const { h, t } = ctx;
  const added = new Set(change.added || []);
  const removed = change.removed || [];
  const same = (requested || []).filter((item) => !added.has(item));
  const items = [
    ...[...added].map((item) => ['added', item]),
    ...removed.map((item) => ['removed', item]),
    ...same.map((item) => ['same', item]),
  ];
  if (items.length === 0) return null;
  return [
    h('h4', {}, t('perm_' + key)),
    h(
      'ul',
      { class: 'diff', dataset: { permission: key } },
      items.map(([kind, item]) =>
        h('li', { class: kind, dataset: { change: kind } }, h('span', { class: 'mark' }, t('mark_' + kind)), ' ', h('span', { class: 'mono' }, item)),
      ),
    ),
  ];
}

function pendingCard(ctx, plugin, reload) {
  const { api, h, t, i18n } = ctx;
  const pending = plugin.pending;
  const diff = pending.diff || {};
  const title = plugin.status === 'pending' && !plugin.versions.some((v) => v.active)
    ? t('pendingInstall', { name: plugin.name, to: pending.version })
    : t('pendingTitle', { name: plugin.name, from: plugin.version, to: pending.version });
  const categories = PERMISSIONS.map((key) =>
    diffItems(ctx, key, diff[key] || { added: [], removed: [] }, pending.requested[key]),
  ).filter(Boolean);
  const extra = [];
  if (diff.state_quota) extra.push(t('quotaChange', { from: i18n.number(diff.state_quota[0]), to: i18n.number(diff.state_quota[1]) }));
  for (const limit of diff.limits || []) {
    extra.push(t('limitChange', { name: tr(ctx, 'limit_', limit.name), from: i18n.number(limit.from), to: i18n.number(limit.to) }));
  }
  const approve = h(
    'button',
    { type: 'button', 'aria-label': t('approveLabel', { name: plugin.name, version: pending.version }) },
    t('approve'),
  );
  const reject = h(
    'button',
    { type: 'button', class: 'danger', 'aria-label': t('rejectLabel', { name: plugin.name, version: pending.version }) },
    t('reject'),
  );
  const url = '/v1/plugins/' + enc(plugin.name);
  approve.addEventListener('click', () => {
    if (!window.confirm(t('approveConfirm', { name: plugin.name, version: pending.version }))) return;
    change(
      ctx,
      approve,
      async () => {
        // The digest reviewed: a version uploaded meanwhile is refused.
        const after = await api.post(url + '/approve', { bundle_digest: pending.bundle_digest });
        return t('approved', { name: plugin.name, version: after.version });
      },
      reload,
    );
  });
  reject.addEventListener('click', () => {
    const reason = window.prompt(t('rejectConfirm', { name: plugin.name, version: pending.version }) + '\n\n' + t('rejectReason'));
    if (reason === null) return;
    change(
      ctx,
      reject,
      async () => {
        await api.post(url + '/reject', { bundle_digest: pending.bundle_digest, reason: reason.trim() });
        return t('rejected', { name: plugin.name, version: pending.version });
      },
      reload,
    );
  });
  return h(
    'article',
    { class: 'card pending', dataset: { plugin: plugin.name } },
    h('h3', {}, title),
    h('p', {}, t('uploaded', { time: i18n.date(pending.uploaded_at_ms), by: pending.uploaded_by })),
    h(
      'p',
      { class: 'hint' },
      t('publisher'), ': ', pending.publisher, ' · ',
      signatureText(ctx, pending.signature, pending.key_id),
      ' · ',
      h('span', { class: 'mono' }, t('bundle', { version: pending.bundle_version, digest: pending.bundle_digest.slice(0, 16) + '…' })),
    ),
    h('h4', {}, t('diffTitle')),
    h('p', { class: 'hint' }, t('diffLegend')),
    categories.length || extra.length
      ? [categories, extra.length ? h('ul', { class: 'plain' }, extra.map((line) => h('li', {}, line))) : null]
      : h('p', { class: 'empty' }, t('noChange')),
    h('div', { class: 'row' }, approve, reject),
  );
}

async function approvalsPage(ctx) {
  const { api, h, t } = ctx;
  const section = h('section', { class: 'card' });
  async function reload() {
    const { plugins } = await api.get('/v1/plugins');
    const waiting = plugins.filter((p) => p.pending);
    ctx.fill(
      section,
      head(ctx, t('navApprovals')),
      h('p', {}, t('approvalsIntro')),
      waiting.length === 0
        ? h('p', { class: 'empty' }, t('noApprovals'))
        : waiting.map((p) => pendingCard(ctx, p, reload)),
    );
  }
  await reload();
  return section;
}

// ---- quarantine ------------------------------------------------------------

async function quarantinePage(ctx) {
  const { api, h, t, i18n } = ctx;
  const section = h('section', { class: 'card' });
  async function reload() {
    const { plugins } = await api.get('/v1/plugins');
    const held = plugins.filter((p) => p.status === 'quarantined');
    const candidates = plugins.filter((p) => p.status === 'active' && p.signature !== 'built_in');
    const reason = h('input', { id: 'quarantine-reason', maxlength: '500', required: true, 'aria-describedby': 'quarantine-reason-hint' });
    const which = h('select', { id: 'quarantine-plugin' }, candidates.map((p) => h('option', { value: p.name }, p.name + ' ' + p.version)));
    const form = h(
      'form',
      { novalidate: true, class: 'toolbar' },
      h('div', { class: 'field' }, h('label', { for: 'quarantine-plugin' }, t('plugin')), which),
      h(
        'div',
        { class: 'field' },
        h('label', { for: 'quarantine-reason' }, t('reason')),
        reason,
        h('p', { class: 'hint', id: 'quarantine-reason-hint' }, t('reasonHint')),
      ),
      h('button', { type: 'submit', class: 'danger' }, t('quarantine')),
    );
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      const why = reason.value.trim();
      if (!why) {
        reason.focus();
        ctx.fail(t('error_needs_reason'));
        return;
      }
      const name = which.value;
      change(
        ctx,
        form.querySelector('button[type=submit]'),
        async () => {
          await api.post('/v1/plugins/' + enc(name) + '/quarantine', { reason: why });
          return t('quarantinedNow', { name });
        },
        reload,
      );
    });
    ctx.fill(
      section,
      head(ctx, t('navQuarantine')),
      h('p', {}, t('quarantineIntro')),
      h('h3', {}, t('quarantined')),
      held.length === 0
        ? h('p', { class: 'empty' }, t('noQuarantined'))
        : h(
            'ul',
            { class: 'plain' },
            held.map((p) => {
              const release = h(
                'button',
                { type: 'button', class: 'secondary', 'aria-label': t('releaseLabel', { name: p.name }) },
                t('release'),
              );
              release.addEventListener('click', () =>
                change(
                  ctx,
                  release,
                  async () => {
                    await api.post('/v1/plugins/' + enc(p.name) + '/release');
                    return t('released', { name: p.name });
                  },
                  reload,
                ),
              );
              const q = p.quarantine;
              return h(
                'li',
                { class: 'row spread' },
                h(
                  'div',
                  {},
                  h('a', { href: '#/plugins/' + enc(p.name) }, p.name), ' ', p.version, ' ',
                  statusBadge(ctx, p.status),
                  q ? h('p', { class: 'hint' }, t('quarantineBy', { time: i18n.date(q.at_ms), by: q.by, reason: q.reason || '—' })) : null,
                ),
                release,
              );
            }),
          ),
      h('h3', {}, t('quarantineOne')),
      candidates.length === 0 ? h('p', { class: 'empty' }, t('noActivePlugins')) : form,
    );
  }
  await reload();
  return section;
}

// ---- audit -----------------------------------------------------------------

// The search of the audit page, kept while the console is open.
const auditSearch = { filters: {}, from: 1 };

function toMs(value, ctx) {
  if (!value) return undefined;
  const ms = new Date(value).getTime();
  if (Number.isNaN(ms)) throw ctx.t('error_bad_time', { value });
  return ms;
}

function toLocalInput(ms) {
  if (ms === undefined || ms === null) return '';
  const d = new Date(ms);
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

async function auditPage(ctx) {
  const { api, h, t, i18n } = ctx;
  const field = (id, key, hint, attributes) =>
    h(
      'div',
      { class: 'field' },
      h('label', { for: id }, t(key)),
      h('input', { id, name: key, autocomplete: 'off', 'aria-describedby': hint ? id + '-hint' : undefined, ...attributes }),
      hint ? h('p', { class: 'hint', id: id + '-hint' }, t(hint)) : null,
    );
  const f = auditSearch.filters;
  const form = h(
    'form',
    { novalidate: true, class: 'toolbar', role: 'search' },
    field('audit-actor', 'actor', 'actorHint', { value: f.actor || '' }),
    field('audit-action', 'action', 'actionHint', { value: f.action || '' }),
    field('audit-subject', 'subject', null, { value: f.subject || '' }),
    field('audit-since', 'since', null, { type: 'datetime-local', value: toLocalInput(f.since_ms) }),
    field('audit-until', 'until', null, { type: 'datetime-local', value: toLocalInput(f.until_ms) }),
    h('button', { type: 'submit' }, t('search')),
    h('button', { type: 'button', class: 'secondary', id: 'audit-clear' }, t('clear')),
  );
  const results = h('div', { id: 'audit-results' });

  async function load(from) {
    const query = new URLSearchParams({ from: String(from), limit: String(AUDIT_PAGE) });
    for (const [key, value] of Object.entries(auditSearch.filters)) {
      if (value !== undefined && value !== '') query.set(key, String(value));
    }
    const page = await api.get('/v1/audit?' + query.toString());
    auditSearch.from = from;
    const pager = h('div', { class: 'pager' });
    if (from > 1) {
      const first = h('button', { type: 'button', class: 'secondary' }, t('first'));
      first.addEventListener('click', () => change(ctx, first, () => load(1)));
      pager.append(first);
    }
    if (page.next) {
      const next = h('button', { type: 'button', class: 'secondary' }, t('next'));
      next.addEventListener('click', () => change(ctx, next, () => load(page.next)));
      pager.append(next);
    }
    ctx.fill(
      results,
      page.entries.length === 0
        ? h('p', { class: 'empty' }, page.next ? t('scannedMore') : t('noEntries'))
        : table(
            ctx,
            [t('colSeq'), t('colTime'), t('colActor'), t('colAction'), t('colSubject'), t('colPlugin'), t('colDetail')],
            page.entries.map((e) => [
              String(e.seq),
              i18n.date(e.at_ms),
              h('span', { class: 'mono' }, e.actor.role + ':' + e.actor.id),
              h('span', { class: 'mono' }, e.action),
              e.subject ? h('span', { class: 'mono' }, e.subject) : '—',
              e.plugin ? [e.plugin, e.plugin_version ? ' ' + e.plugin_version : ''] : '—',
              text(e.detail),
            ]),
          ),
      pager,
    );
    return null;
  }

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    change(ctx, form.querySelector('button[type=submit]'), async () => {
      const value = (id) => form.querySelector('#' + id).value.trim();
      auditSearch.filters = {
        actor: value('audit-actor'),
        action: value('audit-action'),
        subject: value('audit-subject'),
        since_ms: toMs(value('audit-since'), ctx),
        until_ms: toMs(value('audit-until'), ctx),
      };
      return load(1);
    });
  });
  form.querySelector('#audit-clear').addEventListener('click', () => {
    auditSearch.filters = {};
    for (const input of form.querySelectorAll('input')) input.value = '';
    change(ctx, null, () => load(1));
  });

  await load(auditSearch.from);
  return h('section', { class: 'card' }, head(ctx, t('navAudit')), h('p', {}, t('auditIntro')), form, results);
}

// ---- deletions -------------------------------------------------------------

async function deletionsPage(ctx) {
  const { api, h, t, i18n } = ctx;
  const status = h(
    'select',
    { id: 'deletion-status' },
    h('option', { value: '' }, t('allStatuses')),
    ['pending', 'keys_destroyed', 'completed'].map((s) => h('option', { value: s }, t('deletion_' + s))),
  );
  const results = h('div', { id: 'deletion-results' });
  const summary = h('p', { class: 'badge overdue', hidden: true });
  let rows = [];
  let next = null;

  async function load(reset) {
    const query = new URLSearchParams({ limit: String(DELETIONS_PAGE) });
    if (status.value) query.set('status', status.value);
    if (!reset && next) query.set('after', next);
    const page = await api.get('/v1/deletions?' + query.toString());
    rows = reset ? page.deletions : rows.concat(page.deletions);
    next = page.next;
    render();
    return null;
  }

  function render() {
    const now = Date.now();
    const overdue = (d) => d.status !== 'completed' && d.deadline_ms < now;
    const late = rows.filter(overdue).length;
    summary.hidden = late === 0;
    summary.textContent = late ? t('overdueCount', { n: late }) : '';
    const more = h('button', { type: 'button', class: 'secondary' }, t('more'));
    more.addEventListener('click', () => change(ctx, more, () => load(false)));
    ctx.fill(
      results,
      rows.length === 0
        ? h('p', { class: 'empty' }, t('noDeletions'))
        : table(
            ctx,
            [t('colId'), t('colSubject'), t('colRequested'), t('colDeadline'), t('colStatus'), t('colLeft'), t('colReceipt')],
            rows.map((d) => {
              const left = d.deadline_ms - now;
              let when;
              if (d.status === 'completed' && d.receipt) {
                when = t(d.receipt.met_deadline ? 'metDeadline' : 'missedDeadline', { time: i18n.date(d.receipt.completed_at_ms) });
              } else if (overdue(d)) {
                when = [badge(ctx, 'overdue', '⚠ ' + t('overdue')), ' ', t('overdueBy', { time: duration(ctx, left) })];
              } else {
                when = t('dueIn', { time: duration(ctx, left) });
              }
              return [
                h('span', { class: 'mono' }, d.id),
                h('span', { class: 'mono' }, d.subject),
                i18n.date(d.requested_at_ms),
                i18n.date(d.deadline_ms),
                tr(ctx, 'deletion_', d.status),
                when,
                d.receipt ? h('span', { class: 'mono' }, d.receipt.digest.slice(0, 16) + '…') : '—',
              ];
            }),
            (r) => (overdue(rows[r]) ? { class: 'overdue' } : {}),
          ),
      next ? h('div', { class: 'pager' }, more) : null,
    );
  }

  status.addEventListener('change', () => change(ctx, null, () => load(true)));
  await load(true);
  return h(
    'section',
    { class: 'card' },
    head(ctx, t('navDeletions')),
    h('p', {}, t('deletionsIntro')),
    h('div', { class: 'toolbar' }, h('div', { class: 'field' }, h('label', { for: 'deletion-status' }, t('statusFilter')), status)),
    summary,
    results,
  );
}
