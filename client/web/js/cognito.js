// Cognito from the browser: the user pool (sign-up, sign-in) and the identity pool (an
// identity id and temporary AWS credentials), over their JSON APIs. These calls are unsigned,
// as on AWS; the only secret the page ever holds is what they return.

import { AwsClient } from "/vendor/aws4fetch.js";

const IDENTITY_TARGET = "AWSCognitoIdentityService.";
const IDP_TARGET = "AWSCognitoIdentityProviderService.";
// Credentials are renewed when fewer than this many milliseconds of their life are left.
export const RENEW_BEFORE_MS = 5 * 60 * 1000;

export class CognitoError extends Error {
  constructor(code, message) {
    super(message || code);
    this.code = code;
  }
}

export class Cognito {
  constructor(config) {
    this.config = config;
  }

  endpoint(service) {
    // Locally one edge API serves both; on AWS each service has its regional endpoint.
    return this.config.apiEndpoint || `https://${service}.${this.config.region}.amazonaws.com`;
  }

  async call(service, target, body) {
    let response;
    try {
      response = await fetch(this.endpoint(service) + "/", {
        method: "POST",
        headers: { "Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": target },
        body: JSON.stringify(body),
        cache: "no-store",
        credentials: "omit",
      });
    } catch (err) {
      throw new CognitoError("NetworkError", "cannot reach the sign-in service");
    }
    const data = await response.json().catch(() => ({}));
    if (!response.ok) {
      const code = String(data.__type || `HTTP${response.status}`).split("#").pop();
      throw new CognitoError(code, data.message || data.Message || code);
    }
    return data;
  }

  idp(operation, body) {
    return this.call("cognito-idp", IDP_TARGET + operation, body);
  }

  identity(operation, body) {
    return this.call("cognito-identity", IDENTITY_TARGET + operation, body);
  }

  // The chat handle is the user attribute custom:handle, chosen once (docs/protocol.md).
  signUp(email, password, handle) {
    return this.idp("SignUp", {
      ClientId: this.config.userPoolClientId,
      Username: email,
      Password: password,
      UserAttributes: [
        { Name: "email", Value: email },
        { Name: "custom:handle", Value: handle },
      ],
    });
  }

  confirmSignUp(email, code) {
    return this.idp("ConfirmSignUp", {
      ClientId: this.config.userPoolClientId,
      Username: email,
      ConfirmationCode: code,
    });
  }

  async signIn(email, password) {
    const data = await this.idp("InitiateAuth", {
      ClientId: this.config.userPoolClientId,
      AuthFlow: "USER_PASSWORD_AUTH",
      AuthParameters: { USERNAME: email, PASSWORD: password },
    });
    return data.AuthenticationResult;
  }

  async refresh(refreshToken) {
    const data = await this.idp("InitiateAuth", {
      ClientId: this.config.userPoolClientId,
      AuthFlow: "REFRESH_TOKEN_AUTH",
      AuthParameters: { REFRESH_TOKEN: refreshToken },
    });
    // Cognito does not return a new refresh token on refresh.
    return { ...data.AuthenticationResult, RefreshToken: refreshToken };
  }

  // On AWS the stack's sign-in step attaches the IoT policy to a user's identity before its
  // first MQTT connection (docs/deploy.md); the local Cognito does that by itself, and its
  // config.json has no signInFunction.
  async attachPolicy(idToken, credentials) {
    const name = this.config.signInFunction;
    if (!name) return;
    const aws = new AwsClient({
      accessKeyId: credentials.accessKeyId,
      secretAccessKey: credentials.secretAccessKey,
      sessionToken: credentials.sessionToken,
      region: this.config.region,
      service: "lambda",
    });
    const url =
      `https://lambda.${this.config.region}.amazonaws.com/2015-03-31/functions/` +
      `${encodeURIComponent(name)}/invocations`;
    const response = await aws.fetch(url, { method: "POST", body: JSON.stringify({ idToken }) });
    const body = await response.json().catch(() => ({}));
    if (!response.ok || response.headers.get("X-Amz-Function-Error") || !body.identityId) {
      throw new CognitoError("SignInStepFailed", "signing in could not finish; try again");
    }
  }

  loginsFor(idToken) {
    const provider = `cognito-idp.${this.config.region}.amazonaws.com/${this.config.userPoolId}`;
    return { [provider]: idToken };
  }

  async getId(logins) {
    const body = { IdentityPoolId: this.config.identityPoolId };
    if (logins) body.Logins = logins;
    return (await this.identity("GetId", body)).IdentityId;
  }

  async credentialsFor(identityId, logins) {
    const body = { IdentityId: identityId };
    if (logins) body.Logins = logins;
    const c = (await this.identity("GetCredentialsForIdentity", body)).Credentials;
    return {
      accessKeyId: c.AccessKeyId,
      secretAccessKey: c.SecretKey,
      sessionToken: c.SessionToken,
      // The JSON protocol sends timestamps as epoch seconds.
      expiresAt: Number(c.Expiration) * 1000,
    };
  }
}

function jwtExpiry(token) {
  try {
    const payload = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(payload)).exp * 1000;
  } catch {
    return 0;
  }
}

// This page's session part of the MQTT client id (`<identity id>_web-<12 hex>`): new on every
// page load, so two tabs, or a tab the browser duplicated, never take each other over.
export function newSessionPart() {
  const bytes = crypto.getRandomValues(new Uint8Array(6));
  return "web-" + [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

// A signed-in user's or a guest's session: who they are and a supply of fresh credentials.
// It lives in sessionStorage, so a reload keeps the identity while another tab gets its own
// (two tabs sharing one client id would keep taking each other's connection over).
const STORAGE_KEY = "iotchat.session";

export class Session {
  constructor(cognito, state) {
    this.cognito = cognito;
    this.kind = state.kind; // "guest" or "user"
    this.identityId = state.identityId;
    this.email = state.email || null;
    this.tokens = state.tokens || null;
    this.credentials = null;
    this.clientId = `${this.identityId}_${newSessionPart()}`;
  }

  static async guest(cognito) {
    const identityId = await cognito.getId(null);
    const session = new Session(cognito, { kind: "guest", identityId });
    await session.fresh();
    return session;
  }

  static async signIn(cognito, email, password) {
    const tokens = await cognito.signIn(email, password);
    const identityId = await cognito.getId(cognito.loginsFor(tokens.IdToken));
    const session = new Session(cognito, { kind: "user", identityId, email, tokens });
    await cognito.attachPolicy(tokens.IdToken, await session.fresh());
    return session;
  }

  static restore(cognito) {
    try {
      const state = JSON.parse(sessionStorage.getItem(STORAGE_KEY) || "null");
      if (state && typeof state.identityId === "string" && state.kind) {
        return new Session(cognito, state);
      }
    } catch {
      /* a damaged entry is a signed-out tab */
    }
    return null;
  }

  save() {
    const { kind, identityId, email, tokens } = this;
    sessionStorage.setItem(STORAGE_KEY, JSON.stringify({ kind, identityId, email, tokens }));
  }

  forget() {
    sessionStorage.removeItem(STORAGE_KEY);
  }

  // Credentials with at least RENEW_BEFORE_MS of life left, renewed (and for a user, the ID
  // token refreshed first) when they are close to expiry.
  async fresh() {
    const now = Date.now();
    if (this.credentials && this.credentials.expiresAt - now > RENEW_BEFORE_MS) {
      return this.credentials;
    }
    let logins = null;
    if (this.kind === "user") {
      if (jwtExpiry(this.tokens.IdToken) - now < RENEW_BEFORE_MS) {
        this.tokens = await this.cognito.refresh(this.tokens.RefreshToken);
      }
      logins = this.cognito.loginsFor(this.tokens.IdToken);
    }
    this.credentials = await this.cognito.credentialsFor(this.identityId, logins);
    this.save();
    return this.credentials;
  }
}
