//! `GET /api/v1/links/{code}/qr?format=svg|png&size=N`: a QR code of the short URL.
//!
//! The `qrcode` crate lays out the symbol (error correction level M, a four-module quiet
//! zone) and draws the SVG; a PNG is the same modules as a 1-bit greyscale image,
//! encoded by the `png` crate. The image is a whole number of pixels per module (at
//! least two), as large as fits in `size`, so edges stay sharp for a scanner. Access is the link's:
//! whoever may read the link may draw its code.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use qrcode::{Color, EcLevel, QrCode};
use serde::Deserialize;

use super::AppState;
use crate::error::{ApiError, Code};

/// Smallest `size` accepted, in pixels.
pub const MIN_SIZE: u32 = 64;
/// Largest `size` accepted, in pixels.
pub const MAX_SIZE: u32 = 2048;
/// `size` when none is given.
pub const DEFAULT_SIZE: u32 = 256;
/// Modules of white around the symbol on each side (the standard's quiet zone).
const QUIET_ZONE: u32 = 4;
/// Fewest pixels per module of a PNG: at one, common scanners (zbar) miss the code.
const MIN_SCALE: u32 = 2;

/// Query parameters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct QrQuery {
    /// `svg` (default) or `png`.
    #[param(value_type = Option<String>, pattern = "^(svg|png)$")]
    format: Option<String>,
    /// Largest width and height of the image in pixels, 64 to 2048 (default 256).
    #[param(value_type = Option<u32>, minimum = 64, maximum = 2048)]
    size: Option<String>,
}

/// The image formats served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Svg,
    Png,
}

impl Format {
    fn parse(text: Option<&str>) -> Result<Self, ApiError> {
        match text {
            None | Some("svg") => Ok(Self::Svg),
            Some("png") => Ok(Self::Png),
            Some(other) => Err(ApiError::new(
                Code::InvalidFormat,
                format!("format must be svg or png, not '{other}'"),
            )),
        }
    }
}

fn parse_size(text: Option<&str>) -> Result<u32, ApiError> {
    let Some(text) = text else {
        return Ok(DEFAULT_SIZE);
    };
    text.parse::<u32>()
        .ok()
        .filter(|n| (MIN_SIZE..=MAX_SIZE).contains(n))
        .ok_or_else(|| {
            ApiError::new(
                Code::InvalidSize,
                format!("size must be a whole number of pixels from {MIN_SIZE} to {MAX_SIZE}"),
            )
        })
}

/// A QR code image of `text`, at most `size` pixels wide and high, but with at least
/// two pixels per module in a PNG however small `size` is.
///
/// # Errors
/// When `text` is too long for any QR version (never for a short URL).
pub fn render(text: &str, format: Format, size: u32) -> Result<Vec<u8>, qrcode::types::QrError> {
    let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M)?;
    Ok(match format {
        Format::Svg => code
            .render::<qrcode::render::svg::Color<'_>>()
            .quiet_zone(true)
            .max_dimensions(size, size)
            .build()
            .into_bytes(),
        Format::Png => png_of(&code, size),
    })
}

/// The modules of `code` as a 1-bit greyscale PNG (0 = dark, 1 = light).
fn png_of(code: &QrCode, size: u32) -> Vec<u8> {
    let modules = u32::try_from(code.width()).unwrap_or(u32::MAX);
    let across = modules + 2 * QUIET_ZONE;
    let scale = (size / across).max(MIN_SCALE);
    let side = across * scale;
    let colors = code.to_colors();
    let row_bytes = side.div_ceil(8) as usize;
    let mut pixels = vec![0u8; row_bytes * side as usize];
    for y in 0..side {
        let my = (y / scale).checked_sub(QUIET_ZONE).filter(|m| *m < modules);
        let row = &mut pixels[y as usize * row_bytes..(y as usize + 1) * row_bytes];
        for x in 0..side {
            let mx = (x / scale).checked_sub(QUIET_ZONE).filter(|m| *m < modules);
            let dark = match (mx, my) {
                (Some(mx), Some(my)) => colors[(my * modules + mx) as usize] == Color::Dark,
                _ => false,
            };
            if !dark {
                row[x as usize / 8] |= 0x80 >> (x % 8);
            }
        }
    }
    let mut out = Vec::with_capacity(pixels.len() / 4 + 128);
    let mut encoder = png::Encoder::new(&mut out, side, side);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::One);
    encoder.set_compression(png::Compression::Fast);
    // Writing to a Vec cannot fail, and the header matches the data by construction.
    let mut writer = encoder.write_header().expect("PNG header into memory");
    writer
        .write_image_data(&pixels)
        .expect("PNG data into memory");
    writer.finish().expect("PNG end into memory");
    out
}

/// A QR code of a link's short URL.
#[utoipa::path(
    get,
    path = "/api/v1/links/{code}/qr",
    tag = "links",
    operation_id = "getLinkQr",
    params(("code" = String, Path, description = "The link's code or alias"), QrQuery),
    security((), ("api_key" = [])),
    responses(
        (status = 200, description = "The QR code of the short URL",
         content((String = "image/svg+xml"), (String = "image/png")),
         headers(("Cache-Control" = String, description = "private, max-age=86400"))),
        (status = 401, description = "No valid API key", body = crate::http::error::Body),
        (status = 404, description = "No such link, or another tenant's", body = crate::http::error::Body),
        (status = 410, description = "Deleted", body = crate::http::error::Body),
        (status = 422, description = "Bad format or size", body = crate::http::error::Body),
        (status = 429, description = "Over the reading quota", body = crate::http::error::Body),
        (status = 503, description = "Its shard is unavailable", body = crate::http::error::Body),
    )
)]
pub async fn qr(
    req: HttpRequest,
    state: web::Data<AppState>,
    code: web::Path<String>,
    query: Result<web::Query<QrQuery>, actix_web::Error>,
) -> Result<HttpResponse, ApiError> {
    state.limit(&req, crate::limits::Class::Redirect)?;
    let query = query.map_err(|e| ApiError::new(Code::InvalidQuery, e.to_string()))?;
    let format = Format::parse(query.format.as_deref())?;
    let size = parse_size(query.size.as_deref())?;
    let caller = state.auth.caller(&req).await?;
    let link = state.links.show(&caller, &code).await?;
    let short_url = format!("{}/{}", state.public_base, state.links.code_of(&link));
    let image = render(&short_url, format, size)
        .map_err(|e| ApiError::new(Code::QrTooLarge, format!("no QR code holds it: {e}")))?;
    let content_type = match format {
        Format::Svg => "image/svg+xml",
        Format::Png => "image/png",
    };
    Ok(HttpResponse::Ok()
        .content_type(content_type)
        // The short URL never changes for a code; the image can be kept a day. Private:
        // a tenant's link must not sit in a shared cache.
        .insert_header((header::CACHE_CONTROL, "private, max-age=86400"))
        .body(image))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_outside_the_bounds_and_unknown_formats_are_refused() {
        assert_eq!(parse_size(None).unwrap(), DEFAULT_SIZE);
        assert_eq!(parse_size(Some("64")).unwrap(), 64);
        assert_eq!(parse_size(Some("2048")).unwrap(), 2048);
        for bad in ["63", "2049", "-1", "1e3", "", "big"] {
            assert_eq!(parse_size(Some(bad)).unwrap_err().code(), Code::InvalidSize);
        }
        assert_eq!(Format::parse(None).unwrap(), Format::Svg);
        assert_eq!(Format::parse(Some("png")).unwrap(), Format::Png);
        assert_eq!(
            Format::parse(Some("gif")).unwrap_err().code(),
            Code::InvalidFormat
        );
    }

    #[test]
    fn a_png_is_a_whole_number_of_pixels_per_module_within_the_size() {
        let text = "https://sho.rt/abcdefghij";
        for size in [64, 100, 256, 1000, 2048] {
            let png = render(text, Format::Png, size).unwrap();
            let decoder = png::Decoder::new(std::io::Cursor::new(png));
            let reader = decoder.read_info().unwrap();
            let info = reader.info();
            let code = QrCode::with_error_correction_level(text, EcLevel::M).unwrap();
            let across = code.width() as u32 + 2 * QUIET_ZONE;
            assert_eq!(info.width, info.height);
            assert_eq!(info.width % across, 0, "size {size}");
            assert!(info.width / across >= MIN_SCALE, "size {size}");
            assert!(
                info.width <= size.max(MIN_SCALE * across),
                "size {size}: {}",
                info.width
            );
            // The largest whole scale that fits: one more pixel a module would not.
            assert!(
                info.width + across > size || info.width == MIN_SCALE * across,
                "size {size}: {}",
                info.width
            );
        }
    }
}
