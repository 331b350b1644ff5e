//! The diesel schema, one definition for both backends (the migrations keep the two
//! databases column-for-column identical). Times are Unix milliseconds; JSON is text.

diesel::table! {
    users (user_id) {
        user_id -> Text,
        email -> Text,
        email_normalized -> Text,
        email_verified -> Bool,
        name -> Nullable<Text>,
        given_name -> Nullable<Text>,
        family_name -> Nullable<Text>,
        nickname -> Nullable<Text>,
        picture -> Nullable<Text>,
        password_hash -> Nullable<Text>,
        blocked -> Bool,
        app_metadata -> Text,
        user_metadata -> Text,
        external_id -> Nullable<Text>,
        created_at -> BigInt,
        updated_at -> BigInt,
        created_by -> Nullable<Text>,
        modified_by -> Nullable<Text>,
        created_on_behalf_by -> Nullable<Text>,
        modified_on_behalf_by -> Nullable<Text>,
        last_login -> Nullable<BigInt>,
        last_ip -> Nullable<Text>,
        logins_count -> BigInt,
        username -> Nullable<Text>,
    }
}

diesel::table! {
    clients (client_id) {
        client_id -> Text,
        client_secret_hash -> Nullable<Text>,
        name -> Text,
        description -> Text,
        app_type -> Text,
        is_first_party -> Bool,
        callbacks -> Text,
        allowed_logout_urls -> Text,
        grant_types -> Text,
        token_endpoint_auth_method -> Text,
        allow_impersonation -> Bool,
        allow_act_as -> Bool,
        initiate_login_uri -> Nullable<Text>,
        addons -> Text,
        jwt_configuration -> Text,
        created_at -> BigInt,
        updated_at -> BigInt,
        web_origins -> Text,
        allowed_origins -> Text,
        oidc_conformant -> Bool,
        logo_uri -> Nullable<Text>,
        client_metadata -> Text,
        allow_token_exchange -> Bool,
        backchannel_logout_uri -> Nullable<Text>,
        backchannel_logout_session_required -> Bool,
    }
}

diesel::table! {
    client_grants (id) {
        id -> Text,
        client_id -> Text,
        audience -> Text,
        scope -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    roles (id) {
        id -> Text,
        name -> Text,
        description -> Text,
    }
}

diesel::table! {
    role_permissions (role_id, resource_server_identifier, permission_name) {
        role_id -> Text,
        resource_server_identifier -> Text,
        permission_name -> Text,
    }
}

diesel::table! {
    user_roles (user_id, role_id) {
        user_id -> Text,
        role_id -> Text,
    }
}

diesel::table! {
    signing_keys (kid) {
        kid -> Text,
        alg -> Text,
        private_key_pem -> Text,
        public_jwk -> Text,
        state -> Text,
        created_at -> BigInt,
        retire_after -> Nullable<BigInt>,
        certificate_pem -> Nullable<Text>,
    }
}

diesel::table! {
    audit_head (id) {
        id -> Integer,
        last_seq -> BigInt,
        last_hash -> Text,
    }
}

diesel::table! {
    audit_log (seq) {
        seq -> BigInt,
        event_type -> Text,
        occurred_at -> BigInt,
        actor_type -> Text,
        actor_id -> Nullable<Text>,
        on_behalf_of -> Nullable<Text>,
        subject_id -> Nullable<Text>,
        client_id -> Nullable<Text>,
        source_ip -> Nullable<Text>,
        description -> Text,
        details -> Text,
        prev_hash -> Text,
        hash -> Text,
    }
}

diesel::table! {
    sessions (id_hash) {
        id_hash -> Text,
        sid -> Text,
        user_id -> Text,
        created_at -> BigInt,
        auth_time -> BigInt,
        last_seen -> BigInt,
        idle_expires_at -> BigInt,
        absolute_expires_at -> BigInt,
        source_ip -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        ended_at -> Nullable<BigInt>,
        impersonator_id -> Nullable<Text>,
        impersonation_reason -> Nullable<Text>,
        impersonation_minted_by -> Nullable<Text>,
    }
}

diesel::table! {
    authorization_requests (id) {
        id -> Text,
        client_id -> Text,
        params -> Text,
        csrf_token -> Text,
        created_at -> BigInt,
        expires_at -> BigInt,
    }
}

diesel::table! {
    consents (user_id, client_id) {
        user_id -> Text,
        client_id -> Text,
        scope -> Text,
        granted_at -> BigInt,
    }
}

diesel::table! {
    authorization_codes (code_hash) {
        code_hash -> Text,
        client_id -> Text,
        user_id -> Text,
        sid -> Text,
        redirect_uri -> Text,
        scope -> Text,
        audience -> Nullable<Text>,
        nonce -> Nullable<Text>,
        code_challenge -> Nullable<Text>,
        auth_time -> BigInt,
        created_at -> BigInt,
        expires_at -> BigInt,
        consumed_at -> Nullable<BigInt>,
        replayed_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    refresh_tokens (token_hash) {
        token_hash -> Text,
        family_id -> Text,
        client_id -> Text,
        user_id -> Text,
        sid -> Text,
        scope -> Text,
        audience -> Nullable<Text>,
        code_hash -> Nullable<Text>,
        auth_time -> BigInt,
        created_at -> BigInt,
        family_expires_at -> BigInt,
        used_at -> Nullable<BigInt>,
        revoked_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    access_tokens (jti) {
        jti -> Text,
        client_id -> Text,
        user_id -> Text,
        sid -> Text,
        family_id -> Nullable<Text>,
        code_hash -> Nullable<Text>,
        expires_at -> BigInt,
        revoked_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    login_throttle (throttle_key) {
        throttle_key -> Text,
        failures -> BigInt,
        window_started_at -> BigInt,
        locked_until -> Nullable<BigInt>,
    }
}

diesel::table! {
    console_sessions (id_hash) {
        id_hash -> Text,
        user_id -> Text,
        label -> Text,
        sealed_token -> Text,
        auth_time -> BigInt,
        created_at -> BigInt,
        expires_at -> BigInt,
    }
}

diesel::table! {
    bewit_keys (kid) {
        kid -> Text,
        key_material -> Text,
        state -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    bewit_redemptions (jti) {
        jti -> Text,
        redeemed_at -> BigInt,
        expires_at -> BigInt,
    }
}

diesel::table! {
    webhooks (id) {
        id -> Text,
        url -> Text,
        secret -> Text,
        event_types -> Text,
        description -> Text,
        enabled -> Bool,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    outbox (id) {
        id -> Text,
        kind -> Text,
        target -> Text,
        event_type -> Text,
        audit_seq -> Nullable<BigInt>,
        payload -> Text,
        status -> Text,
        attempts -> Integer,
        next_attempt_at -> BigInt,
        leased_until -> Nullable<BigInt>,
        last_error -> Nullable<Text>,
        created_at -> BigInt,
        delivered_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    session_clients (sid, client_id) {
        sid -> Text,
        client_id -> Text,
        first_at -> BigInt,
        saml_name_id -> Nullable<Text>,
        saml_name_id_format -> Nullable<Text>,
    }
}

diesel::joinable!(client_grants -> clients (client_id));
diesel::joinable!(role_permissions -> roles (role_id));
diesel::joinable!(user_roles -> roles (role_id));
diesel::joinable!(user_roles -> users (user_id));

diesel::table! {
    cache_epoch (id) {
        id -> Integer,
        epoch -> BigInt,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    users,
    clients,
    client_grants,
    roles,
    role_permissions,
    user_roles,
    signing_keys,
    audit_head,
    audit_log,
    sessions,
    authorization_requests,
    consents,
    authorization_codes,
    refresh_tokens,
    access_tokens,
    login_throttle,
    bewit_keys,
    bewit_redemptions,
    console_sessions,
    webhooks,
    outbox,
    session_clients,
);
