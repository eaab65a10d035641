//! The console's languages: Chinese (default) and English. Every
//! user-visible string of the sign-in and account pages lives here, once
//! per language.

use std::convert::Infallible;
use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest};

use crate::auth::Role;

/// The cookie that remembers an explicit choice of language.
pub const COOKIE: &str = "lang";

/// A console language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    /// Simplified Chinese, the default.
    #[default]
    Zh,
    /// English.
    En,
}

impl Lang {
    /// `zh`, `zh-CN`, `zh-Hans`… → Chinese; `en`, `en-US`… → English.
    pub fn from_tag(tag: &str) -> Option<Lang> {
        let primary = tag.trim().split(['-', '_']).next()?.to_ascii_lowercase();
        match primary.as_str() {
            "zh" => Some(Lang::Zh),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    /// The best supported language of an `Accept-Language` header, by
    /// quality (ties keep the header's order); `None` if none is supported.
    pub fn from_accept_language(header: &str) -> Option<Lang> {
        let mut best: Option<(u16, Lang)> = None;
        for item in header.split(',') {
            let mut parts = item.split(';');
            let Some(lang) = parts.next().and_then(Lang::from_tag) else {
                continue;
            };
            let q = parts
                .find_map(|p| p.trim().strip_prefix("q="))
                .map_or(1000, quality);
            if q > 0 && best.is_none_or(|(b, _)| q > b) {
                best = Some((q, lang));
            }
        }
        best.map(|(_, l)| l)
    }

    /// The `lang` cookie if it names a language, else `Accept-Language`,
    /// else Chinese.
    pub fn detect(req: &HttpRequest) -> Lang {
        req.cookie(COOKIE)
            .and_then(|c| Lang::from_tag(c.value()))
            .or_else(|| {
                req.headers()
                    .get(actix_web::http::header::ACCEPT_LANGUAGE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(Lang::from_accept_language)
            })
            .unwrap_or_default()
    }

    /// The value of the `lang` cookie and of `/lang/{code}`.
    pub fn code(self) -> &'static str {
        match self {
            Lang::Zh => "zh",
            Lang::En => "en",
        }
    }

    /// The other language (for the switch link).
    pub fn other(self) -> Lang {
        match self {
            Lang::Zh => Lang::En,
            Lang::En => Lang::Zh,
        }
    }

    /// This language's strings.
    pub fn strings(self) -> &'static Strings {
        match self {
            Lang::Zh => &ZH,
            Lang::En => &EN,
        }
    }
}

/// `q=0.8` → 800; malformed values count as 0 (not acceptable).
fn quality(q: &str) -> u16 {
    q.trim()
        .parse::<f32>()
        .ok()
        .filter(|q| (0.0..=1.0).contains(q))
        .map_or(0, |q| (q * 1000.0).round() as u16)
}

impl FromRequest for Lang {
    type Error = Infallible;
    type Future = Ready<Result<Lang, Infallible>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Ok(Lang::detect(req)))
    }
}

/// Every string of the console's sign-in, home, account and admin pages.
/// `{n}` marks a number filled in by the methods below.
#[derive(Debug)]
pub struct Strings {
    /// The `lang` attribute of `<html>`.
    pub html_lang: &'static str,
    pub app_name: &'static str,
    /// The label of the link to the other language.
    pub other_language: &'static str,

    pub login_title: &'static str,
    pub login_label: &'static str,
    pub password_label: &'static str,
    pub login_button: &'static str,
    pub login_failed: &'static str,
    pub locked: &'static str,
    pub setup_hint: &'static str,

    pub home_title: &'static str,
    pub hello: &'static str,
    pub role_label: &'static str,
    pub role_agent: &'static str,
    pub role_supervisor: &'static str,
    pub role_admin: &'static str,
    pub role_unknown: &'static str,
    pub workbench_soon: &'static str,
    pub board_link: &'static str,
    pub search_link: &'static str,
    pub logout_button: &'static str,
    pub users_link: &'static str,

    pub password_title: &'static str,
    pub current_password: &'static str,
    pub new_password: &'static str,
    pub confirm_password: &'static str,
    min_len_hint: &'static str,
    pub save_button: &'static str,
    pub back_link: &'static str,
    pub wrong_current: &'static str,
    pub mismatch: &'static str,
    too_short: &'static str,
    too_long: &'static str,
    pub same_password: &'static str,
    pub password_changed: &'static str,

    pub users_title: &'static str,
    pub col_login: &'static str,
    pub col_name: &'static str,
    pub col_role: &'static str,
    pub col_status: &'static str,
    pub status_active: &'static str,
    pub status_disabled: &'static str,

    pub forbidden_title: &'static str,
    pub forbidden_text: &'static str,
    pub expired_title: &'static str,
    pub expired_text: &'static str,
    pub home_link: &'static str,
}

impl Strings {
    /// How a role is called.
    pub fn role(&self, role: Role) -> &'static str {
        match role {
            Role::Agent => self.role_agent,
            Role::Supervisor => self.role_supervisor,
            Role::Admin => self.role_admin,
        }
    }

    /// As [`Strings::role`], for a role that may be unknown.
    pub fn role_opt(&self, role: &Option<Role>) -> &'static str {
        role.map_or(self.role_unknown, |r| self.role(r))
    }

    /// "At least {n} characters".
    pub fn min_len_hint(&self, n: usize) -> String {
        fill(self.min_len_hint, n)
    }

    /// The new password is shorter than `n`.
    pub fn too_short(&self, n: usize) -> String {
        fill(self.too_short, n)
    }

    /// The new password is longer than `n`.
    pub fn too_long(&self, n: usize) -> String {
        fill(self.too_long, n)
    }
}

fn fill(text: &str, n: usize) -> String {
    text.replace("{n}", &n.to_string())
}

/// The workbench page's strings (the page's own, and its script's).
pub struct WorkbenchStrings {
    pub title: &'static str,
    pub connecting: &'static str,
    pub status_label: &'static str,
    pub status_idle: &'static str,
    pub status_busy: &'static str,
    pub status_break: &'static str,
    pub status_offline: &'static str,
    pub conversations: &'static str,
    pub transfer_target: &'static str,
    pub transfer_note: &'static str,
    pub transfer: &'static str,
    pub close: &'static str,
    pub composer: &'static str,
    pub send: &'static str,
    pub channel_oa: &'static str,
    pub channel_kf: &'static str,
    pub channel_web: &'static str,
    pub just_now: &'static str,
    pub waiting_mins: &'static str,
    pub type_image: &'static str,
    pub type_voice: &'static str,
    pub type_video: &'static str,
    pub type_shortvideo: &'static str,
    pub type_file: &'static str,
    pub type_location: &'static str,
    pub type_link: &'static str,
    pub type_event: &'static str,
    pub customer: &'static str,
    pub no_conversations: &'static str,
    pub download: &'static str,
    pub status_queued: &'static str,
    pub status_sent: &'static str,
    pub status_failed: &'static str,
    pub status_sending: &'static str,
    pub window_closed: &'static str,
    pub window_closing: &'static str,
    pub connected: &'static str,
    pub reconnecting: &'static str,
    pub customer_typing: &'static str,
    /// Under an agent's message the web visitor has seen.
    pub customer_read: &'static str,
    pub panel_title: &'static str,
    pub panel_phone: &'static str,
    pub panel_region: &'static str,
    pub panel_group: &'static str,
    pub panel_agent: &'static str,
    pub panel_crm: &'static str,
    pub panel_tags: &'static str,
    pub panel_channels: &'static str,
    pub panel_trades: &'static str,
    pub trade_payment: &'static str,
    pub trade_sale: &'static str,
    pub panel_conversations: &'static str,
    pub panel_history: &'static str,
    pub load_earlier: &'static str,
    pub none: &'static str,
    pub state_bot: &'static str,
    pub state_queued: &'static str,
    pub state_assigned: &'static str,
    pub state_closed: &'static str,
    pub quick_replies: &'static str,
    pub save_quick: &'static str,
    pub quick_saved: &'static str,
    pub emoji: &'static str,
    pub attach: &'static str,
    pub attach_hint: &'static str,
    pub uploading: &'static str,
    pub upload_refused: &'static str,
    pub note_mode: &'static str,
    pub note_hint: &'static str,
    pub note: &'static str,
    pub note_placeholder: &'static str,
}

impl WorkbenchStrings {
    /// What the script shows, as JSON for the page (`<` escaped: it sits
    /// in a `<script type="application/json">`).
    pub fn script_json(&self) -> String {
        let pairs = [
            ("channel_oa", self.channel_oa),
            ("channel_kf", self.channel_kf),
            ("channel_web", self.channel_web),
            ("just_now", self.just_now),
            ("waiting_mins", self.waiting_mins),
            ("type_image", self.type_image),
            ("type_voice", self.type_voice),
            ("type_video", self.type_video),
            ("type_shortvideo", self.type_shortvideo),
            ("type_file", self.type_file),
            ("type_location", self.type_location),
            ("type_link", self.type_link),
            ("type_event", self.type_event),
            ("customer", self.customer),
            ("no_conversations", self.no_conversations),
            ("download", self.download),
            ("status_queued", self.status_queued),
            ("status_sent", self.status_sent),
            ("status_failed", self.status_failed),
            ("status_sending", self.status_sending),
            ("window_closed", self.window_closed),
            ("window_closing", self.window_closing),
            ("connected", self.connected),
            ("reconnecting", self.reconnecting),
            ("customer_typing", self.customer_typing),
            ("customer_read", self.customer_read),
            ("panel_title", self.panel_title),
            ("panel_phone", self.panel_phone),
            ("panel_region", self.panel_region),
            ("panel_group", self.panel_group),
            ("panel_agent", self.panel_agent),
            ("panel_crm", self.panel_crm),
            ("panel_tags", self.panel_tags),
            ("panel_channels", self.panel_channels),
            ("panel_trades", self.panel_trades),
            ("trade_payment", self.trade_payment),
            ("trade_sale", self.trade_sale),
            ("panel_conversations", self.panel_conversations),
            ("panel_history", self.panel_history),
            ("load_earlier", self.load_earlier),
            ("none", self.none),
            ("state_bot", self.state_bot),
            ("state_queued", self.state_queued),
            ("state_assigned", self.state_assigned),
            ("state_closed", self.state_closed),
            ("quick_replies", self.quick_replies),
            ("save_quick", self.save_quick),
            ("quick_saved", self.quick_saved),
            ("emoji", self.emoji),
            ("uploading", self.uploading),
            ("upload_refused", self.upload_refused),
            ("note_mode", self.note_mode),
            ("note_hint", self.note_hint),
            ("note", self.note),
            ("note_placeholder", self.note_placeholder),
        ];
        script_json_of(&pairs)
    }
}

impl Lang {
    pub fn workbench(self) -> &'static WorkbenchStrings {
        match self {
            Lang::Zh => &WB_ZH,
            Lang::En => &WB_EN,
        }
    }
}

static WB_ZH: WorkbenchStrings = WorkbenchStrings {
    title: "工作台",
    connecting: "连接中…",
    status_label: "状态 ",
    status_idle: "空闲",
    status_busy: "忙碌",
    status_break: "小休",
    status_offline: "离线",
    conversations: "会话",
    transfer_target: "客服编号或 g组编号",
    transfer_note: "转接备注",
    transfer: "转接",
    close: "结束会话",
    composer: "输入回复，Enter 发送，Shift+Enter 换行",
    send: "发送",
    channel_oa: "公众号",
    channel_kf: "微信客服",
    channel_web: "网页",
    just_now: "刚刚",
    waiting_mins: "已等待 {n} 分钟",
    type_image: "图片",
    type_voice: "语音",
    type_video: "视频",
    type_shortvideo: "小视频",
    type_file: "文件",
    type_location: "位置",
    type_link: "链接",
    type_event: "事件",
    customer: "客户",
    no_conversations: "暂无会话",
    download: "下载",
    status_queued: "发送中",
    status_sent: "已发送",
    status_failed: "发送失败",
    status_sending: "发送中",
    window_closed: "48 小时窗口已关闭，微信将拒绝发送",
    window_closing: "48 小时窗口将于 {time} 关闭",
    connected: "已连接",
    reconnecting: "重新连接中…",
    customer_typing: "客户正在输入…",
    customer_read: "已读",
    panel_title: "客户资料",
    panel_phone: "电话",
    panel_region: "地区",
    panel_group: "城市组",
    panel_agent: "专属客服",
    panel_crm: "CRM 编号",
    panel_tags: "标签",
    panel_channels: "渠道身份",
    panel_trades: "车辆交易",
    trade_payment: "打款",
    trade_sale: "销售",
    panel_conversations: "历史会话",
    panel_history: "全部聊天记录",
    load_earlier: "加载更早",
    none: "无",
    state_bot: "机器人",
    state_queued: "排队中",
    state_assigned: "服务中",
    state_closed: "已结束",
    quick_replies: "快捷回复",
    save_quick: "存为快捷回复",
    quick_saved: "已存为快捷回复",
    emoji: "表情",
    attach: "图片/文件",
    attach_hint: "发送图片、语音、视频或文件（也可粘贴或拖入图片）。公众号：图片 2 MB、语音 2 MB、视频 10 MB，不能发文件；微信客服：图片 10 MB、文件 20 MB",
    uploading: "上传中 {n}%",
    upload_refused: "未发送",
    note_mode: "内部备注",
    note_hint: "备注仅客服和主管可见，不会发给客户",
    note: "内部备注",
    note_placeholder: "写一条内部备注（客户看不到）",
};

static WB_EN: WorkbenchStrings = WorkbenchStrings {
    title: "Workbench",
    connecting: "Connecting…",
    status_label: "Status ",
    status_idle: "Idle",
    status_busy: "Busy",
    status_break: "Break",
    status_offline: "Offline",
    conversations: "Conversations",
    transfer_target: "agent id or g+group id",
    transfer_note: "transfer note",
    transfer: "Transfer",
    close: "Close",
    composer: "Reply; Enter sends, Shift+Enter for a new line",
    send: "Send",
    channel_oa: "Official Account",
    channel_kf: "WeCom CS",
    channel_web: "Web",
    just_now: "just now",
    waiting_mins: "waiting {n} min",
    type_image: "image",
    type_voice: "voice",
    type_video: "video",
    type_shortvideo: "short video",
    type_file: "file",
    type_location: "location",
    type_link: "link",
    type_event: "event",
    customer: "Customer",
    no_conversations: "No conversations",
    download: "Download",
    status_queued: "sending",
    status_sent: "sent",
    status_failed: "failed",
    status_sending: "sending",
    window_closed: "The 48-hour window is closed: WeChat will refuse messages",
    window_closing: "The 48-hour window closes at {time}",
    connected: "connected",
    reconnecting: "reconnecting…",
    customer_typing: "The customer is typing…",
    customer_read: "Read",
    panel_title: "Customer",
    panel_phone: "Phone",
    panel_region: "Region",
    panel_group: "City group",
    panel_agent: "Dedicated agent",
    panel_crm: "CRM id",
    panel_tags: "Tags",
    panel_channels: "Channels",
    panel_trades: "Vehicle trades",
    trade_payment: "Payment",
    trade_sale: "Sale",
    panel_conversations: "Conversations",
    panel_history: "Full history",
    load_earlier: "Load earlier",
    none: "none",
    state_bot: "robot",
    state_queued: "queued",
    state_assigned: "assigned",
    state_closed: "closed",
    quick_replies: "Quick replies",
    save_quick: "Save as quick reply",
    quick_saved: "Saved as a quick reply",
    emoji: "Emoji",
    attach: "Image/file",
    attach_hint: "Send an image, voice, video or file (or paste or drop a picture). Official Accounts: images 2 MB, voice 2 MB, video 10 MB, no files; WeCom: images 10 MB, files 20 MB",
    uploading: "uploading {n}%",
    upload_refused: "Not sent",
    note_mode: "Internal note",
    note_hint: "Notes are seen by agents and supervisors only, never sent to the customer",
    note: "Internal note",
    note_placeholder: "Write an internal note (the customer does not see it)",
};

static ZH: Strings = Strings {
    html_lang: "zh-CN",
    app_name: "Kefu 客服",
    other_language: "English",

    login_title: "登录",
    login_label: "登录名",
    password_label: "密码",
    login_button: "登录",
    login_failed: "登录名或密码不正确。",
    locked: "失败次数过多，该账号已暂时锁定，请稍后再试。",
    setup_hint: "尚未创建管理员：请使用启动日志中打印的一次性初始化链接。",

    home_title: "控制台",
    hello: "您好，",
    role_label: "角色：",
    role_agent: "客服",
    role_supervisor: "主管",
    role_admin: "管理员",
    role_unknown: "未知",
    workbench_soon: "进入工作台",
    board_link: "主管看板",
    search_link: "历史搜索",
    logout_button: "退出登录",
    users_link: "用户列表",

    password_title: "修改密码",
    current_password: "当前密码",
    new_password: "新密码",
    confirm_password: "确认新密码",
    min_len_hint: "至少 {n} 个字符",
    save_button: "保存",
    back_link: "返回控制台",
    wrong_current: "当前密码不正确。",
    mismatch: "两次输入的新密码不一致。",
    too_short: "新密码至少需要 {n} 个字符。",
    too_long: "新密码最多 {n} 个字符。",
    same_password: "新密码不能与当前密码相同。",
    password_changed: "密码已修改，其他设备上的登录已全部退出。",

    users_title: "用户列表",
    col_login: "登录名",
    col_name: "姓名",
    col_role: "角色",
    col_status: "状态",
    status_active: "正常",
    status_disabled: "已停用",

    forbidden_title: "无权访问",
    forbidden_text: "您的角色无权打开此页面。",
    expired_title: "页面已过期",
    expired_text: "表单已过期或来源无效，请刷新页面后重试。",
    home_link: "返回控制台",
};

static EN: Strings = Strings {
    html_lang: "en",
    app_name: "Kefu",
    other_language: "中文",

    login_title: "Sign in",
    login_label: "Login",
    password_label: "Password",
    login_button: "Sign in",
    login_failed: "Wrong login or password.",
    locked: "Too many failed attempts: this login is locked for a while. Try again later.",
    setup_hint: "No administrator yet: open the one-time setup link printed in the start-up log.",

    home_title: "Console",
    hello: "Hello, ",
    role_label: "Role: ",
    role_agent: "Agent",
    role_supervisor: "Supervisor",
    role_admin: "Administrator",
    role_unknown: "unknown",
    workbench_soon: "Open the workbench",
    board_link: "Supervisor board",
    search_link: "History search",
    logout_button: "Sign out",
    users_link: "Users",

    password_title: "Change password",
    current_password: "Current password",
    new_password: "New password",
    confirm_password: "Confirm the new password",
    min_len_hint: "at least {n} characters",
    save_button: "Save",
    back_link: "Back to the console",
    wrong_current: "The current password is wrong.",
    mismatch: "The new passwords do not match.",
    too_short: "The new password must be at least {n} characters long.",
    too_long: "The new password must be at most {n} characters long.",
    same_password: "The new password must differ from the current one.",
    password_changed: "Password changed; your other sessions were signed out.",

    users_title: "Users",
    col_login: "Login",
    col_name: "Name",
    col_role: "Role",
    col_status: "Status",
    status_active: "Active",
    status_disabled: "Disabled",

    forbidden_title: "Access denied",
    forbidden_text: "Your role may not open this page.",
    expired_title: "Page expired",
    expired_text: "This form has expired or did not come from Kefu. Reload the page and try again.",
    home_link: "Back to the console",
};

/// Strings as JSON for a page's script (`<` escaped: it sits in a
/// `<script type="application/json">`).
fn script_json_of(pairs: &[(&str, &str)]) -> String {
    let map: serde_json::Map<String, serde_json::Value> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), serde_json::Value::String((*v).to_owned())))
        .collect();
    serde_json::Value::Object(map)
        .to_string()
        .replace('<', "\\u003c")
}

/// The admin page's script.
pub struct AdminStrings {
    pub groups: &'static str,
    pub new_group: &'static str,
    pub add_group: &'static str,
    pub rename: &'static str,
    pub new_user: &'static str,
    pub login: &'static str,
    pub name: &'static str,
    pub role: &'static str,
    pub capacity: &'static str,
    pub user_groups: &'static str,
    pub create: &'static str,
    pub edit: &'static str,
    pub save: &'static str,
    pub disable: &'static str,
    pub enable: &'static str,
    pub reset_password: &'static str,
    pub one_time: &'static str,
    pub saved: &'static str,
    pub role_agent: &'static str,
    pub role_supervisor: &'static str,
    pub role_admin: &'static str,
    pub qr_section: &'static str,
    pub qr_help: &'static str,
    pub qr_var_customer: &'static str,
    pub qr_var_agent: &'static str,
    pub qr_limits: &'static str,
    pub qr_none: &'static str,
    pub qr_title: &'static str,
    pub qr_content: &'static str,
    pub qr_new: &'static str,
    pub qr_add: &'static str,
    pub qr_added: &'static str,
    pub qr_delete: &'static str,
    pub qr_delete_confirm: &'static str,
    pub qr_deleted: &'static str,
    pub qr_required: &'static str,
    pub qr_insert_customer: &'static str,
    pub qr_insert_agent: &'static str,
    pub qr_customer_var: &'static str,
    pub qr_agent_var: &'static str,
    pub acc_section: &'static str,
    pub acc_help: &'static str,
    pub acc_public_url_missing: &'static str,
    pub acc_none: &'static str,
    pub acc_id: &'static str,
    pub acc_kind: &'static str,
    pub kind_official_account: &'static str,
    pub kind_wecom_kf: &'static str,
    pub acc_name: &'static str,
    pub acc_app_id: &'static str,
    pub acc_corp_id: &'static str,
    pub acc_open_kfids: &'static str,
    pub acc_open_kfids_none: &'static str,
    pub acc_callback: &'static str,
    pub acc_copy: &'static str,
    pub acc_copied: &'static str,
    pub acc_encryption: &'static str,
    pub enc_plaintext: &'static str,
    pub enc_compatible: &'static str,
    pub enc_safe: &'static str,
    pub acc_token_mode: &'static str,
    pub token_stable: &'static str,
    pub token_plain: &'static str,
    pub acc_link_unionid: &'static str,
    pub acc_welcome: &'static str,
    pub acc_secret: &'static str,
    pub acc_token: &'static str,
    pub acc_aes_key: &'static str,
    pub acc_file: &'static str,
    pub configured: &'static str,
    pub not_configured: &'static str,
    pub yes: &'static str,
    pub no: &'static str,
}

impl AdminStrings {
    pub fn script_json(&self) -> String {
        script_json_of(&[
            ("groups", self.groups),
            ("new_group", self.new_group),
            ("add_group", self.add_group),
            ("rename", self.rename),
            ("new_user", self.new_user),
            ("login", self.login),
            ("name", self.name),
            ("role", self.role),
            ("capacity", self.capacity),
            ("user_groups", self.user_groups),
            ("create", self.create),
            ("edit", self.edit),
            ("save", self.save),
            ("disable", self.disable),
            ("enable", self.enable),
            ("reset_password", self.reset_password),
            ("one_time", self.one_time),
            ("saved", self.saved),
            ("role_agent", self.role_agent),
            ("role_supervisor", self.role_supervisor),
            ("role_admin", self.role_admin),
            ("qr_section", self.qr_section),
            ("qr_help", self.qr_help),
            ("qr_var_customer", self.qr_var_customer),
            ("qr_var_agent", self.qr_var_agent),
            ("qr_limits", self.qr_limits),
            ("qr_none", self.qr_none),
            ("qr_title", self.qr_title),
            ("qr_content", self.qr_content),
            ("qr_new", self.qr_new),
            ("qr_add", self.qr_add),
            ("qr_added", self.qr_added),
            ("qr_delete", self.qr_delete),
            ("qr_delete_confirm", self.qr_delete_confirm),
            ("qr_deleted", self.qr_deleted),
            ("qr_required", self.qr_required),
            ("qr_insert_customer", self.qr_insert_customer),
            ("qr_insert_agent", self.qr_insert_agent),
            ("qr_customer_var", self.qr_customer_var),
            ("qr_agent_var", self.qr_agent_var),
            ("acc_section", self.acc_section),
            ("acc_help", self.acc_help),
            ("acc_public_url_missing", self.acc_public_url_missing),
            ("acc_none", self.acc_none),
            ("acc_id", self.acc_id),
            ("acc_kind", self.acc_kind),
            ("kind_official_account", self.kind_official_account),
            ("kind_wecom_kf", self.kind_wecom_kf),
            ("acc_name", self.acc_name),
            ("acc_app_id", self.acc_app_id),
            ("acc_corp_id", self.acc_corp_id),
            ("acc_open_kfids", self.acc_open_kfids),
            ("acc_open_kfids_none", self.acc_open_kfids_none),
            ("acc_callback", self.acc_callback),
            ("acc_copy", self.acc_copy),
            ("acc_copied", self.acc_copied),
            ("acc_encryption", self.acc_encryption),
            ("enc_plaintext", self.enc_plaintext),
            ("enc_compatible", self.enc_compatible),
            ("enc_safe", self.enc_safe),
            ("acc_token_mode", self.acc_token_mode),
            ("token_stable", self.token_stable),
            ("token_plain", self.token_plain),
            ("acc_link_unionid", self.acc_link_unionid),
            ("acc_welcome", self.acc_welcome),
            ("acc_secret", self.acc_secret),
            ("acc_token", self.acc_token),
            ("acc_aes_key", self.acc_aes_key),
            ("acc_file", self.acc_file),
            ("configured", self.configured),
            ("not_configured", self.not_configured),
            ("yes", self.yes),
            ("no", self.no),
        ])
    }
}

impl Lang {
    pub fn admin(self) -> &'static AdminStrings {
        match self {
            Lang::Zh => &ADMIN_ZH,
            Lang::En => &ADMIN_EN,
        }
    }
}

static ADMIN_ZH: AdminStrings = AdminStrings {
    groups: "城市组",
    new_group: "新城市组名称",
    add_group: "添加城市组",
    rename: "改名",
    new_user: "新建用户",
    login: "登录名",
    name: "姓名",
    role: "角色",
    capacity: "接待上限",
    user_groups: "所属城市组（首个为主组）",
    create: "创建",
    edit: "管理",
    save: "保存",
    disable: "停用",
    enable: "启用",
    reset_password: "重置密码",
    one_time: "一次性密码（只显示这一次，请交给本人，登录后修改）：",
    saved: "已保存",
    role_agent: "客服",
    role_supervisor: "主管",
    role_admin: "管理员",
    qr_section: "共享快捷回复",
    qr_help: "共享快捷回复对所有客服可见，在工作台的“快捷回复”中选用；发送前会替换以下变量：",
    qr_var_customer: "{客户} 或 {customer_name}：客户姓名（不知道时为“客户”）",
    qr_var_agent: "{客服} 或 {agent_name}：发送这条回复的客服姓名",
    qr_limits: "标题最多 64 个字符（一行），内容最多 2000 个字符，共享快捷回复最多 500 条。",
    qr_none: "还没有共享快捷回复。",
    qr_title: "标题",
    qr_content: "内容",
    qr_new: "新建共享快捷回复",
    qr_add: "添加",
    qr_added: "已添加",
    qr_delete: "删除",
    qr_delete_confirm: "删除这条共享快捷回复？所有客服都将不再看到它。",
    qr_deleted: "已删除",
    qr_required: "标题和内容都不能为空。",
    qr_insert_customer: "插入 {客户}",
    qr_insert_agent: "插入 {客服}",
    qr_customer_var: "{客户}",
    qr_agent_var: "{客服}",
    acc_section: "微信账号设置（只读）",
    acc_help: "账号在服务器的 wechat-config/accounts/*.toml 中配置，修改后重启生效。密钥（AppSecret、Token、EncodingAESKey）从不在此显示，只显示是否已配置。",
    acc_public_url_missing: "未设置 server.public_url：下面的回调 URL 用的是本机地址，微信服务器访问不到。请将其设为微信能访问的 HTTPS 地址。",
    acc_none: "没有配置任何微信账号。",
    acc_id: "账号 ID",
    acc_kind: "类型",
    kind_official_account: "公众号",
    kind_wecom_kf: "微信客服（企业微信）",
    acc_name: "名称",
    acc_app_id: "AppID",
    acc_corp_id: "企业ID（corpid）",
    acc_open_kfids: "客服账号（open_kfid）",
    acc_open_kfids_none: "尚无：收到某客服账号的第一条消息后列出",
    acc_callback: "回调 URL（填入微信后台的服务器地址 URL）",
    acc_copy: "复制",
    acc_copied: "已复制",
    acc_encryption: "消息加解密方式",
    enc_plaintext: "明文模式",
    enc_compatible: "兼容模式",
    enc_safe: "安全模式",
    acc_token_mode: "access_token 获取方式",
    token_stable: "stable_token（多实例安全）",
    token_plain: "token（每次获取都会刷新）",
    acc_link_unionid: "按 unionid 合并客户",
    acc_welcome: "关注自动回复",
    acc_secret: "AppSecret / Secret",
    acc_token: "Token（令牌）",
    acc_aes_key: "EncodingAESKey（消息加解密密钥）",
    acc_file: "配置文件",
    configured: "已配置",
    not_configured: "未配置",
    yes: "是",
    no: "否",
};

static ADMIN_EN: AdminStrings = AdminStrings {
    groups: "City groups",
    new_group: "New group name",
    add_group: "Add group",
    rename: "Rename",
    new_user: "New user",
    login: "Login",
    name: "Name",
    role: "Role",
    capacity: "Capacity",
    user_groups: "Groups (first is home)",
    create: "Create",
    edit: "Manage",
    save: "Save",
    disable: "Disable",
    enable: "Enable",
    reset_password: "Reset password",
    one_time: "One-time password (shown only now; hand it over, to be changed after sign-in): ",
    saved: "Saved",
    role_agent: "Agent",
    role_supervisor: "Supervisor",
    role_admin: "Administrator",
    qr_section: "Shared quick replies",
    qr_help: "Every agent sees the shared quick replies under Quick replies in the workbench; these variables are filled in before sending:",
    qr_var_customer: "{customer_name} or {客户}: the customer's name (客户 when unknown)",
    qr_var_agent: "{agent_name} or {客服}: the name of the agent who sends it",
    qr_limits: "A title is one line of up to 64 characters, a content up to 2,000 characters; at most 500 shared quick replies.",
    qr_none: "No shared quick replies yet.",
    qr_title: "Title",
    qr_content: "Content",
    qr_new: "New shared quick reply",
    qr_add: "Add",
    qr_added: "Added",
    qr_delete: "Delete",
    qr_delete_confirm: "Delete this shared quick reply? No agent will see it any more.",
    qr_deleted: "Deleted",
    qr_required: "Give both a title and a content.",
    qr_insert_customer: "Insert {customer_name}",
    qr_insert_agent: "Insert {agent_name}",
    qr_customer_var: "{customer_name}",
    qr_agent_var: "{agent_name}",
    acc_section: "WeChat accounts (read-only)",
    acc_help: "Accounts are configured on the server in wechat-config/accounts/*.toml; a change takes effect after a restart. Secrets (AppSecret, Token, EncodingAESKey) are never shown here, only whether they are set.",
    acc_public_url_missing: "server.public_url is not set: the callback URLs below use the local address, which WeChat's servers cannot reach. Set it to the HTTPS address WeChat reaches.",
    acc_none: "No WeChat account is configured.",
    acc_id: "Id",
    acc_kind: "Kind",
    kind_official_account: "Official Account",
    kind_wecom_kf: "WeCom Customer Service",
    acc_name: "Name",
    acc_app_id: "AppID",
    acc_corp_id: "Corp ID (corpid)",
    acc_open_kfids: "Customer-service accounts (open_kfid)",
    acc_open_kfids_none: "none yet: each is listed after its first message",
    acc_callback: "Callback URL (paste it as the server URL in WeChat's console)",
    acc_copy: "Copy",
    acc_copied: "Copied",
    acc_encryption: "Message encryption",
    enc_plaintext: "Plaintext",
    enc_compatible: "Compatible",
    enc_safe: "Safe",
    acc_token_mode: "Access tokens",
    token_stable: "stable_token (safe for several instances)",
    token_plain: "token (each call rotates it)",
    acc_link_unionid: "Join customers by unionid",
    acc_welcome: "Welcome message",
    acc_secret: "AppSecret / Secret",
    acc_token: "Token",
    acc_aes_key: "EncodingAESKey",
    acc_file: "Config file",
    configured: "configured",
    not_configured: "not configured",
    yes: "Yes",
    no: "No",
};

/// The supervisors' board: its page and its script.
pub struct BoardStrings {
    pub title: &'static str,
    pub groups: &'static str,
    pub queue_depth: &'static str,
    pub longest_wait: &'static str,
    pub load: &'static str,
    pub unanswered: &'static str,
    pub decisions: &'static str,
    pub customer: &'static str,
    pub agent: &'static str,
    pub waiting: &'static str,
    pub reason: &'static str,
    pub view: &'static str,
    pub take_over: &'static str,
    pub transfer: &'static str,
    pub transfer_target: &'static str,
    pub took_over: &'static str,
    pub transferred: &'static str,
    pub none: &'static str,
    pub secs: &'static str,
    pub mins: &'static str,
    pub status_idle: &'static str,
    pub status_busy: &'static str,
    pub status_break: &'static str,
    pub status_offline: &'static str,
    pub off_shift: &'static str,
    pub channel_oa: &'static str,
    pub channel_kf: &'static str,
    pub channel_web: &'static str,
    pub workbench_link: &'static str,
    pub updated: &'static str,
    pub no_group: &'static str,
    pub note: &'static str,
}

impl BoardStrings {
    pub fn script_json(&self) -> String {
        script_json_of(&[
            ("title", self.title),
            ("groups", self.groups),
            ("queue_depth", self.queue_depth),
            ("longest_wait", self.longest_wait),
            ("load", self.load),
            ("unanswered", self.unanswered),
            ("decisions", self.decisions),
            ("customer", self.customer),
            ("agent", self.agent),
            ("waiting", self.waiting),
            ("reason", self.reason),
            ("view", self.view),
            ("take_over", self.take_over),
            ("transfer", self.transfer),
            ("transfer_target", self.transfer_target),
            ("took_over", self.took_over),
            ("transferred", self.transferred),
            ("none", self.none),
            ("secs", self.secs),
            ("mins", self.mins),
            ("status_idle", self.status_idle),
            ("status_busy", self.status_busy),
            ("status_break", self.status_break),
            ("status_offline", self.status_offline),
            ("off_shift", self.off_shift),
            ("channel_oa", self.channel_oa),
            ("channel_kf", self.channel_kf),
            ("channel_web", self.channel_web),
            ("workbench_link", self.workbench_link),
            ("updated", self.updated),
            ("no_group", self.no_group),
            ("note", self.note),
        ])
    }
}

impl Lang {
    pub fn board(self) -> &'static BoardStrings {
        match self {
            Lang::Zh => &BOARD_ZH,
            Lang::En => &BOARD_EN,
        }
    }
}

static BOARD_ZH: BoardStrings = BoardStrings {
    title: "主管看板",
    groups: "城市组",
    queue_depth: "排队",
    longest_wait: "最长等待",
    load: "接待",
    unanswered: "待回复客户",
    decisions: "分配记录",
    customer: "客户",
    agent: "客服",
    waiting: "等待",
    reason: "原因",
    view: "查看",
    take_over: "接管",
    transfer: "转接",
    transfer_target: "客服编号或 g组编号",
    took_over: "已接管，请到工作台回复",
    transferred: "已转接",
    none: "无",
    secs: "{n} 秒",
    mins: "{n} 分钟",
    status_idle: "空闲",
    status_busy: "忙碌",
    status_break: "小休",
    status_offline: "离线",
    off_shift: "不在班",
    channel_oa: "公众号",
    channel_kf: "微信客服",
    channel_web: "网页",
    workbench_link: "工作台",
    updated: "更新于 {time}",
    no_group: "未分组",
    note: "内部备注",
};

static BOARD_EN: BoardStrings = BoardStrings {
    title: "Supervisor board",
    groups: "City groups",
    queue_depth: "Queued",
    longest_wait: "Longest wait",
    load: "Load",
    unanswered: "Customers waiting for a reply",
    decisions: "Routing decisions",
    customer: "Customer",
    agent: "Agent",
    waiting: "Waiting",
    reason: "Reason",
    view: "View",
    take_over: "Take over",
    transfer: "Transfer",
    transfer_target: "agent id or g+group id",
    took_over: "Taken over: reply from your workbench",
    transferred: "Transferred",
    none: "none",
    secs: "{n} s",
    mins: "{n} min",
    status_idle: "idle",
    status_busy: "busy",
    status_break: "break",
    status_offline: "offline",
    off_shift: "off shift",
    channel_oa: "Official Account",
    channel_kf: "WeCom CS",
    channel_web: "Web",
    workbench_link: "Workbench",
    updated: "updated {time}",
    no_group: "no group",
    note: "Internal note",
};

/// The history search page's strings (the page's own, and its script's).
pub struct SearchStrings {
    pub title: &'static str,
    pub placeholder: &'static str,
    pub search: &'static str,
    pub customer: &'static str,
    pub agent: &'static str,
    pub any_agent: &'static str,
    pub channel: &'static str,
    pub any_channel: &'static str,
    pub channel_oa: &'static str,
    pub channel_kf: &'static str,
    pub channel_web: &'static str,
    pub from: &'static str,
    pub to: &'static str,
    pub no_results: &'static str,
    pub more: &'static str,
    pub context: &'static str,
    pub customer_sender: &'static str,
    pub robot_sender: &'static str,
    pub system_sender: &'static str,
    pub found: &'static str,
    pub found_more: &'static str,
    pub need_input: &'static str,
    pub workbench_link: &'static str,
    pub open_customer: &'static str,
    pub media: &'static str,
    pub note: &'static str,
}

impl SearchStrings {
    pub fn script_json(&self) -> String {
        script_json_of(&[
            ("title", self.title),
            ("placeholder", self.placeholder),
            ("search", self.search),
            ("customer", self.customer),
            ("agent", self.agent),
            ("any_agent", self.any_agent),
            ("channel", self.channel),
            ("any_channel", self.any_channel),
            ("channel_oa", self.channel_oa),
            ("channel_kf", self.channel_kf),
            ("channel_web", self.channel_web),
            ("from", self.from),
            ("to", self.to),
            ("no_results", self.no_results),
            ("more", self.more),
            ("context", self.context),
            ("customer_sender", self.customer_sender),
            ("robot_sender", self.robot_sender),
            ("system_sender", self.system_sender),
            ("found", self.found),
            ("found_more", self.found_more),
            ("need_input", self.need_input),
            ("workbench_link", self.workbench_link),
            ("open_customer", self.open_customer),
            ("media", self.media),
            ("note", self.note),
        ])
    }
}

impl Lang {
    pub fn search(self) -> &'static SearchStrings {
        match self {
            Lang::Zh => &SEARCH_ZH,
            Lang::En => &SEARCH_EN,
        }
    }
}

static SEARCH_ZH: SearchStrings = SearchStrings {
    title: "历史搜索",
    placeholder: "搜索聊天记录，如：打款、过户、京A12345",
    search: "搜索",
    customer: "客户编号",
    agent: "客服",
    any_agent: "全部客服",
    channel: "渠道",
    any_channel: "全部渠道",
    channel_oa: "公众号",
    channel_kf: "微信客服",
    channel_web: "网页",
    from: "从",
    to: "到",
    no_results: "没有找到匹配的消息",
    more: "更多结果",
    context: "上下文",
    customer_sender: "客户",
    robot_sender: "机器人",
    system_sender: "系统",
    found: "找到 {n} 条（按时间倒序）",
    found_more: "已显示 {n} 条，还有更多",
    need_input: "请输入关键词，或选择客户或客服",
    workbench_link: "工作台",
    open_customer: "查看客户",
    media: "[媒体]",
    note: "内部备注",
};

static SEARCH_EN: SearchStrings = SearchStrings {
    title: "History search",
    placeholder: "Search messages, e.g. payment, transfer, plate",
    search: "Search",
    customer: "Customer id",
    agent: "Agent",
    any_agent: "Any agent",
    channel: "Channel",
    any_channel: "Any channel",
    channel_oa: "Official Account",
    channel_kf: "WeCom",
    channel_web: "Web",
    from: "From",
    to: "To",
    no_results: "No matching messages",
    more: "More results",
    context: "Context",
    customer_sender: "Customer",
    robot_sender: "Robot",
    system_sender: "System",
    found: "{n} found (newest first)",
    found_more: "{n} shown, more available",
    need_input: "Type words, or choose a customer or an agent",
    workbench_link: "Workbench",
    open_customer: "Open customer",
    media: "[media]",
    note: "Internal note",
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_language_picks_the_best_supported_language() {
        assert_eq!(Lang::from_accept_language("en"), Some(Lang::En));
        assert_eq!(Lang::from_accept_language("en-US,en;q=0.9"), Some(Lang::En));
        assert_eq!(
            Lang::from_accept_language("zh-CN,zh;q=0.9,en;q=0.8"),
            Some(Lang::Zh)
        );
        assert_eq!(
            Lang::from_accept_language("fr, en;q=0.5, zh;q=0.7"),
            Some(Lang::Zh)
        );
        assert_eq!(
            Lang::from_accept_language("en;q=0, zh;q=0.1"),
            Some(Lang::Zh)
        );
        assert_eq!(Lang::from_accept_language("de, fr"), None);
        assert_eq!(Lang::from_accept_language("en;q=bogus"), None);
        assert_eq!(Lang::from_accept_language(""), None);
    }

    #[test]
    fn tags_and_codes() {
        assert_eq!(Lang::from_tag("zh-Hans-CN"), Some(Lang::Zh));
        assert_eq!(Lang::from_tag("EN_gb"), Some(Lang::En));
        assert_eq!(Lang::from_tag("ja"), None);
        for l in [Lang::Zh, Lang::En] {
            assert_eq!(Lang::from_tag(l.code()), Some(l));
            assert_eq!(l.other().other(), l);
        }
        assert_eq!(Lang::default(), Lang::Zh);
    }

    #[test]
    fn numbers_are_filled_in() {
        assert_eq!(ZH.too_short(12), "新密码至少需要 12 个字符。");
        assert_eq!(EN.min_len_hint(12), "at least 12 characters");
        assert_eq!(EN.role(Role::Admin), "Administrator");
        assert_eq!(ZH.role_opt(&None), "未知");
    }
}
